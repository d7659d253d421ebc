// Element types and scalar conversions between fp32, fp16 and bf16.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace agp {

// Values match the wire enum DType in schemas/ptp.fbs.
enum class DType : std::uint8_t {
  kUnknown = 0,
  kF32 = 1,
  kF16 = 2,
  kBF16 = 3,
  kU8 = 4,
  kI32 = 5,
  kI64 = 6,
};

// Bytes per element; 0 for kUnknown or an out-of-range value.
std::size_t dtype_size(DType t);
// "f32", "f16", "bf16", "u8", "i32", "i64"; "unknown" otherwise.
std::string_view dtype_name(DType t);
// Inverse of dtype_name (also accepts "fp32", "fp16", "float32", "float16", "bfloat16").
std::optional<DType> dtype_from_name(std::string_view name);
// True for the types a transfer packet may carry as its source tensor (f32, f16, bf16).
bool is_float_dtype(DType t);

// IEEE binary16 <-> binary32, round to nearest even; NaN stays NaN, overflow goes to infinity.
std::uint16_t f32_to_f16(float f);
float f16_to_f32(std::uint16_t h);
// bfloat16 is the top half of binary32; conversion rounds to nearest even and keeps NaN quiet.
// Inline: tensor loops over bf16 vectorize only when they see these.
inline std::uint16_t f32_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<std::uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  }
  const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}
inline float bf16_to_f32(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

}  // namespace agp
