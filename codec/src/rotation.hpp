// Internal: the seeded block-diagonal randomized Walsh-Hadamard rotation.
//
// A vector of `dim` values is split into blocks whose sizes are the binary digits of dim, largest
// first, with blocks capped at 4096 (1280 = 1024 + 256, 384 = 256 + 128, 768 = 512 + 256). Each
// value is multiplied by a random sign (a splitmix64 stream from the seed), then each block gets an
// unnormalized fast Walsh-Hadamard transform. No padding: every stored value is a real one.
#pragma once

#include <cstdint>
#include <vector>

namespace agp::codec {

struct Block {
  std::uint32_t offset;
  std::uint32_t size;  // a power of two
};

std::vector<Block> hadamard_blocks(std::uint32_t dim);

// Random +-1.0f signs for `dim` coordinates from `seed` (deterministic on every platform).
std::vector<float> random_signs(std::uint32_t dim, std::uint64_t seed);

// In-place unnormalized Walsh-Hadamard transform of x[0..n) (n a power of two): applying it twice
// multiplies by n.
void fwht(float* x, std::uint32_t n);

}  // namespace agp::codec
