// TurboQuant-MSE: per-block L2 norm, random signs, Walsh-Hadamard rotation, and the Lloyd-Max
// codebook of the rotated coordinate's exact distribution (codebooks.hpp).
//
// Per vector: codes = dim indices of `bits` bits packed LSB-first (padded to a byte), then the
// norms part = one norm per Hadamard block (f16 or f32). A block of m values x is coded as
//   z = H (s * x) / |x|          (H the unnormalized m x m Hadamard matrix, z has unit variance)
//   i_k = nearest centroid of z_k
// and decoded as x' = s * H c / m * |x| with c_k = centroid[i_k].
#include <hwy/aligned_allocator.h>

#include <string>
#include <vector>

#include "bitpack.hpp"
#include "codebooks.hpp"
#include "codecs.hpp"
#include "rotation.hpp"
#include "simd_kernels.hpp"
#include "simd_level.hpp"

namespace agp::codec {
namespace {

constexpr std::size_t K = simd::kTileLanes;

// Per-thread lane tile (dim x 16 floats, 64-byte aligned) and index tile.
struct LaneScratch {
  hwy::AlignedFreeUniquePtr<float[]> x;
  std::vector<std::uint8_t> idx;  // dim x 16
  std::size_t dim = 0;
  void reserve(std::size_t d) {
    if (d > dim) {
      x = hwy::AllocateAligned<float>(d * K);
      idx.resize(d * K);
      dim = d;
    }
  }
};
thread_local LaneScratch tls_lanes;

class TurboQuantMse final : public Codec {
 public:
  TurboQuantMse(const CodecConfig& c, std::uint32_t dim)
      : Codec(c, dim), blocks_(hadamard_blocks(dim)), signs_(random_signs(dim, c.seed)) {
    for (const Block& b : blocks_) {
      const Codebook& cb = codebook(static_cast<int>(b.size), c.bits);
      std::vector<float> bounds(static_cast<std::size_t>(cb.levels() - 1));
      for (int i = 0; i + 1 < cb.levels(); ++i) bounds[i] = cb.boundary(i);
      boundaries_.push_back(std::move(bounds));
    }
    for (const Block& b : blocks_) books_.push_back(&codebook(static_cast<int>(b.size), c.bits));
    code_bytes_ = static_cast<std::uint32_t>(packed_bytes(dim, c.bits));
    norm_bytes_ = static_cast<std::uint32_t>(dtype_size(c.norm_dtype));
    parts_ = {{SectionKind::kCodes, code_bytes_},
              {SectionKind::kNorms, static_cast<std::uint32_t>(blocks_.size()) * norm_bytes_}};
  }

 protected:
  // The vectorized path: lane tiles of 16 vectors (simd_kernels.hpp). The scalar reference is the
  // base class's vector-major loop over encode_tile/decode_tile below.
  Status encode_vectors(const VectorAccess& in, std::uint64_t first, std::size_t n,
                        std::byte* const* out) const override {
    if (use_reference_kernels()) return Codec::encode_vectors(in, first, n, out);
    LaneScratch& s = tls_lanes;
    s.reserve(dim_);
    const int bits = config_.bits;
    const std::size_t norms_per_vector = blocks_.size() * norm_bytes_;
    for (std::size_t done = 0; done < n; done += K) {
      const std::size_t lanes = std::min(K, n - done);
      // Read straight from the tensor when the 16 vectors lie side by side (channels-first);
      // otherwise gather them into the tile first and work in place.
      const auto rows = in.lane_rows(first + done, lanes);
      if (!rows) in.gather_lanes(first + done, lanes, s.x.get());
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        const Block& blk = blocks_[b];
        float* xb = s.x.get() + blk.offset * K;
        alignas(64) float ss[K];
        alignas(64) float inv[K];
        if (rows) {
          const std::size_t esize = rows->f16 ? 2 : 4;
          simd::encode_load(
              rows->base + blk.offset * rows->stride * static_cast<std::ptrdiff_t>(esize),
              rows->f16, rows->stride, blk.size, signs_.data() + blk.offset, xb, ss);
        } else {
          simd::encode_load(xb, false, K, blk.size, signs_.data() + blk.offset, xb, ss);
        }
        for (std::size_t t = 0; t < K; ++t) {
          inv[t] = 0.0f;
          if (t >= lanes) continue;
          if (!std::isfinite(ss[t])) {
            std::vector<float> v(dim_);
            in.gather(first + done + t, 1, v.data());
            return explain_bad_sum(v.data(), dim_, dim_);
          }
          const float norm = std::sqrt(ss[t]);
          AGP_RETURN_IF_ERROR(store_scale(
              norm, config_.norm_dtype, out[1] + (done + t) * norms_per_vector + b * norm_bytes_));
          inv[t] = norm == 0 ? 0.0f : 1.0f / norm;
        }
        std::uint8_t* ib = s.idx.data() + blk.offset * K;
        simd::encode_transform(xb, blk.size, inv, boundaries_[b].data(), bits, ib);
        if (bits > 4) {  // the kernel left z in xb
          const Codebook::Lut lut = books_[b]->lut();
          simd::quantize_lut_rows(xb, blk.size, lut.lo, lut.inv_bin, lut.bins, lut.start,
                                  lut.boundaries, lut.max_steps, ib);
        }
      }
      simd::pack_tile(s.idx.data(), dim_, bits, lanes,
                      reinterpret_cast<std::uint8_t*>(out[0] + done * code_bytes_), code_bytes_);
    }
    return {};
  }

  Status decode_vectors(const std::byte* const* in, std::uint64_t first, std::size_t n,
                        const VectorAccess& out) const override {
    if (use_reference_kernels()) return Codec::decode_vectors(in, first, n, out);
    LaneScratch& s = tls_lanes;
    s.reserve(dim_);
    const int bits = config_.bits;
    const std::size_t norms_per_vector = blocks_.size() * norm_bytes_;
    for (std::size_t done = 0; done < n; done += K) {
      const std::size_t lanes = std::min(K, n - done);
      // 4-bit codes stay packed: the decode kernel splits the nibbles as it loads them.
      const bool packed4 = bits == 4;
      simd::unpack_tile(reinterpret_cast<const std::uint8_t*>(in[0] + done * code_bytes_),
                        code_bytes_, dim_, bits, lanes, s.idx.data(), packed4);
      const auto rows = out.lane_rows(first + done, lanes);
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        const Block& blk = blocks_[b];
        alignas(64) float lane_scale[K];
        for (std::size_t t = 0; t < K; ++t) {
          lane_scale[t] = 0.0f;
          if (t >= lanes) continue;
          float norm;
          if (!load_scale(in[1] + (done + t) * norms_per_vector + b * norm_bytes_,
                          config_.norm_dtype, &norm)) {
            return make_error(ErrorCode::kBadEncodedData,
                              "a stored block norm is negative, NaN or infinite");
          }
          lane_scale[t] = norm / static_cast<float>(blk.size);
        }
        float* xb = s.x.get() + blk.offset * K;
        const std::uint8_t* ib = s.idx.data() + (packed4 ? blk.offset / 2 : blk.offset) * K;
        if (rows) {
          const std::size_t esize = rows->f16 ? 2 : 4;
          simd::decode_block(
              ib, packed4, blk.size, books_[b]->centroids(), bits, lane_scale,
              signs_.data() + blk.offset, xb,
              rows->base + blk.offset * rows->stride * static_cast<std::ptrdiff_t>(esize),
              rows->f16, rows->stride);
        } else {
          simd::decode_block(ib, packed4, blk.size, books_[b]->centroids(), bits, lane_scale,
                             signs_.data() + blk.offset, xb, xb, false, K);
        }
      }
      if (!rows) out.scatter_lanes(first + done, lanes, s.x.get());
    }
    return {};
  }

  Status encode_tile(const float* x, std::size_t n, std::byte* const* out) const override {
    thread_local std::vector<float> y;
    thread_local std::vector<std::uint8_t> idx;
    y.resize(dim_);
    idx.resize(dim_);
    const std::size_t norms_per_vector = blocks_.size() * norm_bytes_;
    for (std::size_t v = 0; v < n; ++v) {
      const float* xv = x + v * dim_;
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        const Block& blk = blocks_[b];
        const float* xb = xv + blk.offset;
        float sumsq = 0;
        for (std::uint32_t i = 0; i < blk.size; ++i) sumsq += xb[i] * xb[i];
        if (!std::isfinite(sumsq)) return explain_bad_sum(xv, dim_, dim_);
        const float norm = std::sqrt(sumsq);
        AGP_RETURN_IF_ERROR(
            store_scale(norm, config_.norm_dtype, out[1] + v * norms_per_vector + b * norm_bytes_));
        const Codebook& cb = *books_[b];
        std::uint8_t* ib = idx.data() + blk.offset;
        if (norm == 0) {
          for (std::uint32_t i = 0; i < blk.size; ++i) ib[i] = cb.quantize(0.0f);
          continue;
        }
        float* yb = y.data() + blk.offset;
        const float* sb = signs_.data() + blk.offset;
        for (std::uint32_t i = 0; i < blk.size; ++i) yb[i] = xb[i] * sb[i];
        fwht(yb, blk.size);
        const float inv = 1.0f / norm;
        for (std::uint32_t i = 0; i < blk.size; ++i) ib[i] = cb.quantize(yb[i] * inv);
      }
      pack_bits(idx.data(), dim_, config_.bits,
                reinterpret_cast<std::uint8_t*>(out[0] + v * code_bytes_));
    }
    return {};
  }

  Status decode_tile(const std::byte* const* in, std::size_t n, float* x) const override {
    thread_local std::vector<std::uint8_t> idx;
    idx.resize(dim_);
    const std::size_t norms_per_vector = blocks_.size() * norm_bytes_;
    for (std::size_t v = 0; v < n; ++v) {
      unpack_bits(reinterpret_cast<const std::uint8_t*>(in[0] + v * code_bytes_), dim_,
                  config_.bits, idx.data());
      float* xv = x + v * dim_;
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        const Block& blk = blocks_[b];
        float norm;
        if (!load_scale(in[1] + v * norms_per_vector + b * norm_bytes_, config_.norm_dtype,
                        &norm)) {
          return make_error(ErrorCode::kBadEncodedData,
                            "a stored block norm is negative, NaN or infinite");
        }
        const float* c = books_[b]->centroids();
        float* xb = xv + blk.offset;
        const std::uint8_t* ib = idx.data() + blk.offset;
        for (std::uint32_t i = 0; i < blk.size; ++i) xb[i] = c[ib[i]];
        fwht(xb, blk.size);
        const float scale = norm / static_cast<float>(blk.size);
        const float* sb = signs_.data() + blk.offset;
        for (std::uint32_t i = 0; i < blk.size; ++i) xb[i] *= scale * sb[i];
      }
    }
    return {};
  }

 private:
  std::vector<Block> blocks_;
  std::vector<float> signs_;
  std::vector<const Codebook*> books_;
  std::vector<std::vector<float>> boundaries_;  // per block, as the scalar quantizer uses them
  std::uint32_t code_bytes_ = 0;
  std::uint32_t norm_bytes_ = 0;
};

}  // namespace

Result<std::unique_ptr<Codec>> make_turboquant_mse(const CodecConfig& c, std::uint32_t dim) {
  if (c.bits < 1 || c.bits > 8) {
    return make_error(ErrorCode::kInvalidArgument,
                      "TurboQuant bits must be 1..8, got " + std::to_string(c.bits));
  }
  if (c.norm_dtype != DType::kF16 && c.norm_dtype != DType::kF32) {
    return make_error(ErrorCode::kInvalidArgument, "TurboQuant norm dtype must be f16 or f32");
  }
  return std::unique_ptr<Codec>(new TurboQuantMse(c, dim));
}

Status explain_bad_sum(const float* x, std::size_t n, std::uint32_t dim) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return make_error(ErrorCode::kNonFiniteInput, "value " + std::to_string(i % dim) +
                                                        " of a vector is " + std::to_string(x[i]) +
                                                        "; NaN and infinity cannot be encoded");
    }
  }
  return make_error(ErrorCode::kValueOutOfRange,
                    "the sum of squares of a block overflows f32 (values above about 1e19)");
}

}  // namespace agp::codec
