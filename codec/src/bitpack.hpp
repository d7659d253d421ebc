// Internal: packing b-bit indices (b = 1..8) LSB-first into bytes. Index k of a run occupies bits
// [k*b, k*b + b) of the run's little-endian bit string; a run is padded with zero bits to a byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace agp::codec {

constexpr std::size_t packed_bytes(std::size_t n, int bits) {
  return (n * static_cast<std::size_t>(bits) + 7) / 8;
}
void pack_bits(const std::uint8_t* idx, std::size_t n, int bits, std::uint8_t* out);
void unpack_bits(const std::uint8_t* in, std::size_t n, int bits, std::uint8_t* idx);

}  // namespace agp::codec
