// Internal: how the index lays out codes. A vector's b-bit codes are stored as b bit planes, the
// most significant first. Plane p holds bit (b - 1 - p) of every code, dimension k at bit k % 8
// of byte k / 8. The top plane is the sign of each rotated coordinate (the codebooks are
// symmetric and sorted), which the first stage of a search scans on its own; it is kept apart
// from the lower planes so that scan streams 1 bit per dimension.
#pragma once

#include <cstddef>
#include <cstdint>

namespace agp::index {

constexpr std::size_t plane_bytes(std::uint32_t dim) {
  return (dim + 7) / 8;
}

// idx: dim codes of `bits` bits. top: plane_bytes(dim); lower: (bits - 1) * plane_bytes(dim).
void codes_to_planes(const std::uint8_t* idx, std::uint32_t dim, int bits, std::uint8_t* top,
                     std::uint8_t* lower);
// The inverse. idx needs room for plane_bytes(dim) * 8 codes (the padding bits decode too).
void planes_to_codes(const std::uint8_t* top, const std::uint8_t* lower, std::uint32_t dim,
                     int bits, std::uint8_t* idx);

}  // namespace agp::index
