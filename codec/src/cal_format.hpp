// Internal: the calibrated codec's chunk layout (docs/codec.md, "TurboQuant-Cal"), shared by its
// encoder and decoder: side data offsets, substreams, raw bit planes, LSB-first bit I/O.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "agp/codec/tensor_view.hpp"

namespace agp::codec::cal {

constexpr std::uint64_t kSideHeader = 20;  // step, calibration id, vectors, escape count
constexpr int kSubstreams = 4;             // per group, by quarters of the vectors
constexpr std::uint64_t kSidePerGroup = 4 + 4 * kSubstreams;  // mode, k, table, substream bytes
constexpr int kMaxRawBits = 24;
// A group whose values have an rms below this many steps is sent as zero: coding it would cost
// about a bit per value (a prefix code's minimum) to remove less error than it leaves.
constexpr double kZeroGroupSteps = 0.3;
// Encoders keep |q| <= 2^28 (the step is at least max|z| / 2^28), so every level h * 2^k + r
// stays below 2^29 in magnitude, the bound a decoder enforces on escapes.
constexpr double kMaxIndex = 268435456.0;
constexpr std::int64_t kMaxLevel = std::int64_t{1} << 29;

inline void put_u16(std::byte* p, std::uint16_t v) { std::memcpy(p, &v, 2); }
inline void put_u32(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
inline void put_u64(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
inline std::uint16_t get_u16(const std::byte* p) { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
inline std::uint32_t get_u32(const std::byte* p) { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
inline std::uint64_t get_u64(const std::byte* p) { std::uint64_t v; std::memcpy(&v, p, 8); return v; }

// First vector of substream i of n vectors (i = 0..4; substream i is [start(i), start(i + 1))).
inline std::uint64_t substream_start(std::uint64_t n, int i) {
  return n * static_cast<std::uint64_t>(i) / kSubstreams;
}

// Raw bits a group of rms `s` steps sends, so that h = q >> k has an rms of 2..4.
inline int raw_bits_for(double s) {
  if (s < 4) return 0;
  return std::min(kMaxRawBits, static_cast<int>(std::floor(std::log2(s))) - 1);
}

// Raw low bits travel as bit planes of 8-value blocks: block b of a group holds values
// [8b, 8b + 8) in k bytes, byte p holding bit p of each value (value i at bit i).
inline std::uint64_t raw_bytes(std::uint64_t values, int k) {
  return (values + 7) / 8 * static_cast<std::uint64_t>(k);
}
void pack_raw(const std::int32_t* q, std::uint64_t values, int k, std::uint8_t* out);
// r[i] for the values (8 slots of slack); false if the last block's padding values are not 0.
bool unpack_raw(const std::uint8_t* in, std::uint64_t values, int k, std::int32_t* r);
// The same for k <= 8, one byte per value.
bool unpack_raw8(const std::uint8_t* in, std::uint64_t values, int k, std::uint8_t* r);

// Whether the view's vectors are contiguous rows (the vector axis last, C order): they load
// and store as one run.
bool contiguous_rows(const TensorView& v);

}  // namespace agp::codec::cal
