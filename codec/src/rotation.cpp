#include "rotation.hpp"

namespace agp::codec {

std::vector<Block> hadamard_blocks(std::uint32_t dim) {
  constexpr std::uint32_t kMaxBlock = 4096;
  std::vector<Block> blocks;
  std::uint32_t off = 0;
  while (dim - off >= kMaxBlock) {
    blocks.push_back({off, kMaxBlock});
    off += kMaxBlock;
  }
  for (std::uint32_t bit = kMaxBlock / 2; bit > 0; bit >>= 1) {
    if ((dim - off) & bit) {
      blocks.push_back({off, bit});
      off += bit;
    }
  }
  return blocks;
}

std::vector<float> random_signs(std::uint32_t dim, std::uint64_t seed) {
  std::vector<float> s(dim);
  std::uint64_t state = seed;
  std::uint64_t word = 0;
  for (std::uint32_t i = 0; i < dim; ++i) {
    if (i % 64 == 0) {
      state += 0x9e3779b97f4a7c15ull;
      std::uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word = z ^ (z >> 31);
    }
    s[i] = (word >> (i % 64)) & 1 ? -1.0f : 1.0f;
  }
  return s;
}

void fwht(float* x, std::uint32_t n) {
  for (std::uint32_t h = 1; h < n; h <<= 1) {
    for (std::uint32_t i = 0; i < n; i += 2 * h) {
      float* a = x + i;
      float* b = x + i + h;
      for (std::uint32_t j = 0; j < h; ++j) {
        const float u = a[j];
        const float v = b[j];
        a[j] = u + v;
        b[j] = u - v;
      }
    }
  }
}

}  // namespace agp::codec
