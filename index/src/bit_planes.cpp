#include "bit_planes.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace agp::index {

namespace {

// spread[v]: byte v's bit k moved to bit 0 of byte k, so OR-ing shifted spreads of the planes
// rebuilds 8 codes at once.
constexpr std::array<std::uint64_t, 256> make_spread() {
  std::array<std::uint64_t, 256> t{};
  for (unsigned v = 0; v < 256; ++v) {
    for (unsigned k = 0; k < 8; ++k) t[v] |= std::uint64_t{(v >> k) & 1u} << (8 * k);
  }
  return t;
}
constexpr std::array<std::uint64_t, 256> kSpread = make_spread();

}  // namespace

void codes_to_planes(const std::uint8_t* idx, std::uint32_t dim, int bits, std::uint8_t* top,
                     std::uint8_t* lower) {
  const std::size_t pb = plane_bytes(dim);
  for (std::size_t byte = 0; byte < pb; ++byte) {
    // Eight codes; the padding past dim is zero.
    std::uint64_t eight = 0;
    std::memcpy(&eight, idx + 8 * byte, std::min<std::size_t>(8, dim - 8 * byte));
    // Bit `bit` of each code, gathered into one byte: byte k's bit 0 lands on bit k of the top
    // byte of the product (the masked bytes are 0 or 1, so no two terms carry into each other).
    auto gather = [&](int bit) {
      const std::uint64_t ones = (eight >> bit) & 0x0101010101010101u;
      return static_cast<std::uint8_t>((ones * 0x0102040810204080u) >> 56);
    };
    top[byte] = gather(bits - 1);
    for (int p = 1; p < bits; ++p) lower[(p - 1) * pb + byte] = gather(bits - 1 - p);
  }
}

void planes_to_codes(const std::uint8_t* top, const std::uint8_t* lower, std::uint32_t dim,
                     int bits, std::uint8_t* idx) {
  const std::size_t pb = plane_bytes(dim);
  for (std::size_t byte = 0; byte < pb; ++byte) {
    std::uint64_t eight = kSpread[top[byte]] << (bits - 1);
    for (int p = 1; p < bits; ++p) eight |= kSpread[lower[(p - 1) * pb + byte]] << (bits - 1 - p);
    std::memcpy(idx + 8 * byte, &eight, 8);
  }
}

}  // namespace agp::index
