#include "bitpack.hpp"

#include <cstring>

namespace agp::codec {

void pack_bits(const std::uint8_t* idx, std::size_t n, int bits, std::uint8_t* out) {
  if (bits == 8) {
    std::memcpy(out, idx, n);
    return;
  }
  if (bits == 4) {
    std::size_t i = 0;
    for (; i + 1 < n; i += 2) out[i / 2] = static_cast<std::uint8_t>(idx[i] | (idx[i + 1] << 4));
    if (i < n) out[i / 2] = idx[i];
    return;
  }
  std::memset(out, 0, packed_bytes(n, bits));
  std::uint32_t acc = 0;
  int filled = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc |= static_cast<std::uint32_t>(idx[i]) << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<std::uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[o] = static_cast<std::uint8_t>(acc);
}

void unpack_bits(const std::uint8_t* in, std::size_t n, int bits, std::uint8_t* idx) {
  if (bits == 8) {
    std::memcpy(idx, in, n);
    return;
  }
  if (bits == 4) {
    std::size_t i = 0;
    for (; i + 1 < n; i += 2) {
      idx[i] = in[i / 2] & 0x0f;
      idx[i + 1] = in[i / 2] >> 4;
    }
    if (i < n) idx[i] = in[i / 2] & 0x0f;
    return;
  }
  const std::uint32_t mask = (1u << bits) - 1;
  std::uint32_t acc = 0;
  int avail = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    while (avail < bits) {
      acc |= static_cast<std::uint32_t>(in[o++]) << avail;
      avail += 8;
    }
    idx[i] = static_cast<std::uint8_t>(acc & mask);
    acc >>= bits;
    avail -= bits;
  }
}

}  // namespace agp::codec
