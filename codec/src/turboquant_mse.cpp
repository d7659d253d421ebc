// TurboQuant-MSE: per-block L2 norm, random signs, Walsh-Hadamard rotation, and the Lloyd-Max
// codebook of the rotated coordinate's exact distribution (codebooks.hpp).
//
// Per vector: codes = dim indices of `bits` bits packed LSB-first (padded to a byte), then the
// norms part = one norm per Hadamard block (f16 or f32). A block of m values x is coded as
//   z = H (s * x) / |x|          (H the unnormalized m x m Hadamard matrix, z has unit variance)
//   i_k = nearest centroid of z_k
// and decoded as x' = s * H c / m * |x| with c_k = centroid[i_k].
#include <string>
#include <vector>

#include "bitpack.hpp"
#include "codebooks.hpp"
#include "codecs.hpp"
#include "rotation.hpp"

namespace agp::codec {
namespace {

class TurboQuantMse final : public Codec {
 public:
  TurboQuantMse(const CodecConfig& c, std::uint32_t dim)
      : Codec(c, dim), blocks_(hadamard_blocks(dim)), signs_(random_signs(dim, c.seed)) {
    for (const Block& b : blocks_) books_.push_back(&codebook(static_cast<int>(b.size), c.bits));
    code_bytes_ = static_cast<std::uint32_t>(packed_bytes(dim, c.bits));
    norm_bytes_ = static_cast<std::uint32_t>(dtype_size(c.norm_dtype));
    parts_ = {{SectionKind::kCodes, code_bytes_},
              {SectionKind::kNorms, static_cast<std::uint32_t>(blocks_.size()) * norm_bytes_}};
  }

 protected:
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
