// Block-absmax baselines: each block of values is scaled by its largest magnitude and rounded to
// a signed integer grid. int8: blocks of 64, levels -127..127, one byte per value. 4-bit: blocks
// of 32, levels -7..7 stored with an offset of 8 in 4 bits (two values per byte, low nibble first).
// Scales (absmax / 127 or absmax / 7) are f16, one per block; the last block may be shorter.
#include <string>
#include <vector>

#include "bitpack.hpp"
#include "codecs.hpp"

namespace agp::codec {
namespace {

class BlockAbsmax final : public Codec {
 public:
  BlockAbsmax(const CodecConfig& c, std::uint32_t dim)
      : Codec(c, dim),
        int8_(c.id == CodecId::kBlockAbsmaxInt8),
        block_(int8_ ? 64 : 32),
        qmax_(int8_ ? 127 : 7),
        blocks_((dim + block_ - 1) / block_) {
    code_bytes_ = int8_ ? dim : static_cast<std::uint32_t>(packed_bytes(dim, 4));
    parts_ = {{SectionKind::kCodes, code_bytes_}, {SectionKind::kScales, blocks_ * 2}};
  }

 protected:
  Status encode_tile(const float* x, std::size_t n, std::byte* const* out) const override {
    thread_local std::vector<std::uint8_t> q;
    q.resize(dim_);
    for (std::size_t v = 0; v < n; ++v) {
      const float* xv = x + v * dim_;
      for (std::uint32_t b = 0; b < blocks_; ++b) {
        const std::uint32_t lo = b * block_, hi = std::min(dim_, lo + block_);
        float amax = 0;
        for (std::uint32_t i = lo; i < hi; ++i) {
          // std::max would step over a NaN; it must be refused like an infinity.
          if (!std::isfinite(xv[i])) return explain_bad_sum(xv, dim_, dim_);
          amax = std::max(amax, std::abs(xv[i]));
        }
        const float scale = amax / static_cast<float>(qmax_);
        AGP_RETURN_IF_ERROR(store_scale(scale, DType::kF16, out[1] + (v * blocks_ + b) * 2));
        // Quantize with the scale the decoder will see, so rounding matches it.
        float stored;
        load_scale(out[1] + (v * blocks_ + b) * 2, DType::kF16, &stored);
        const float inv = stored > 0 ? 1.0f / stored : 0.0f;
        for (std::uint32_t i = lo; i < hi; ++i) {
          float r = std::nearbyint(xv[i] * inv);
          r = std::min(std::max(r, static_cast<float>(-qmax_)), static_cast<float>(qmax_));
          q[i] = static_cast<std::uint8_t>(static_cast<int>(r) + (int8_ ? 0 : 8));
        }
      }
      auto* codes = reinterpret_cast<std::uint8_t*>(out[0] + v * code_bytes_);
      if (int8_) {
        std::memcpy(codes, q.data(), dim_);
      } else {
        pack_bits(q.data(), dim_, 4, codes);
      }
    }
    return {};
  }

  Status decode_tile(const std::byte* const* in, std::size_t n, float* x) const override {
    thread_local std::vector<std::uint8_t> q;
    q.resize(dim_);
    for (std::size_t v = 0; v < n; ++v) {
      const auto* codes = reinterpret_cast<const std::uint8_t*>(in[0] + v * code_bytes_);
      if (int8_) {
        std::memcpy(q.data(), codes, dim_);
      } else {
        unpack_bits(codes, dim_, 4, q.data());
      }
      float* xv = x + v * dim_;
      for (std::uint32_t b = 0; b < blocks_; ++b) {
        float scale;
        if (!load_scale(in[1] + (v * blocks_ + b) * 2, DType::kF16, &scale)) {
          return make_error(ErrorCode::kBadEncodedData,
                            "a stored block scale is negative or not finite");
        }
        const std::uint32_t lo = b * block_, hi = std::min(dim_, lo + block_);
        for (std::uint32_t i = lo; i < hi; ++i) {
          const int level = int8_ ? static_cast<int>(static_cast<std::int8_t>(q[i])) : q[i] - 8;
          xv[i] = static_cast<float>(level) * scale;
        }
      }
    }
    return {};
  }

 private:
  bool int8_;
  std::uint32_t block_;
  int qmax_;
  std::uint32_t blocks_;
  std::uint32_t code_bytes_ = 0;
};

class RawCodec final : public Codec {
 public:
  RawCodec(const CodecConfig& c, std::uint32_t dim) : Codec(c, dim) {
    parts_ = {{SectionKind::kRaw, static_cast<std::uint32_t>(dim * dtype_size(c.raw_dtype))}};
  }

 protected:
  Status encode_tile(const float* x, std::size_t n, std::byte* const* out) const override {
    const TensorView dst = TensorView::contiguous(out[0], config_.raw_dtype, {n, dim_}, 1);
    for (std::size_t i = 0; i < n * dim_; ++i) {
      if (!std::isfinite(x[i])) return explain_bad_sum(x + i, 1, dim_);
      if (config_.raw_dtype == DType::kF16 && std::abs(x[i]) >= 65520.0f) {
        return make_error(ErrorCode::kValueOutOfRange,
                          std::to_string(x[i]) + " does not fit in f16; use raw dtype f32 or bf16");
      }
    }
    VectorAccess(dst).scatter(0, n, x);
    return {};
  }

  Status decode_tile(const std::byte* const* in, std::size_t n, float* x) const override {
    const TensorView src = TensorView::contiguous(in[0], config_.raw_dtype, {n, dim_}, 1);
    VectorAccess(src).gather(0, n, x);
    return {};
  }
};

}  // namespace

Result<std::unique_ptr<Codec>> make_block_absmax(const CodecConfig& c, std::uint32_t dim) {
  const int want = c.id == CodecId::kBlockAbsmaxInt8 ? 8 : 4;
  if (c.bits != want) {
    return make_error(ErrorCode::kInvalidArgument, std::string(codec_name(c.id)) + " has " +
                                                       std::to_string(want) + " bits, not " +
                                                       std::to_string(c.bits));
  }
  return std::unique_ptr<Codec>(new BlockAbsmax(c, dim));
}

Result<std::unique_ptr<Codec>> make_raw_codec(const CodecConfig& c, std::uint32_t dim) {
  if (!is_float_dtype(c.raw_dtype)) {
    return make_error(ErrorCode::kInvalidArgument, "raw codec dtype must be f32, f16 or bf16");
  }
  CodecConfig fixed = c;
  fixed.bits = static_cast<int>(8 * dtype_size(c.raw_dtype));
  return std::unique_ptr<Codec>(new RawCodec(fixed, dim));
}

}  // namespace agp::codec
