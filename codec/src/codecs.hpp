// Internal: constructors of the concrete codecs (registry in codec.cpp) and shared helpers.
#pragma once

#include <cmath>
#include <cstring>
#include <memory>

#include "agp/codec/codec.hpp"

namespace agp::codec {

Result<std::unique_ptr<Codec>> make_raw_codec(const CodecConfig& c, std::uint32_t dim);
Result<std::unique_ptr<Codec>> make_turboquant_mse(const CodecConfig& c, std::uint32_t dim);
Result<std::unique_ptr<Codec>> make_turboquant_prod(const CodecConfig& c, std::uint32_t dim);
Result<std::unique_ptr<Codec>> make_block_absmax(const CodecConfig& c, std::uint32_t dim);

// Stores a non-negative scale or norm as f16 or f32; kValueOutOfRange when f16 cannot hold it.
inline Status store_scale(float v, DType t, std::byte* out) {
  if (t == DType::kF32) {
    std::memcpy(out, &v, 4);
    return {};
  }
  if (!(v <= 65504.0f)) {
    return make_error(ErrorCode::kValueOutOfRange,
                      "a norm or scale of " + std::to_string(v) +
                          " does not fit in f16 (max 65504); use norm dtype f32");
  }
  const std::uint16_t h = f32_to_f16(v);
  std::memcpy(out, &h, 2);
  return {};
}

// Loads a stored scale; false when it is negative, NaN or infinite (no encoder writes those).
inline bool load_scale(const std::byte* in, DType t, float* v) {
  if (t == DType::kF32) {
    std::memcpy(v, in, 4);
  } else {
    std::uint16_t h;
    std::memcpy(&h, in, 2);
    *v = f16_to_f32(h);
  }
  return std::isfinite(*v) && *v >= 0;
}

// kNonFiniteInput naming the first NaN/Inf of x[0..n), or kValueOutOfRange if all are finite (so a
// sum of squares overflowed).
Status explain_bad_sum(const float* x, std::size_t n, std::uint32_t dim);

}  // namespace agp::codec
