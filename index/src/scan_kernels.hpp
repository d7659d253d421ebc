// Internal: the vector kernels of a search (search.cpp), each with the scalar reference every SIMD
// level is checked against and falls back to when agp/codec/simd.hpp forces "reference".
//
// The sign stage scans the top bit plane (bit_planes.hpp) of every vector.
// The rotated query is quantized per block to 4 bits in offset binary, q_k ~ step * (u_k - 7.5)
// with u_k = sum_j 2^j b_jk, and stored as 4 planes b_j laid out like a vector's plane. With
// s_k = +1 or -1 a vector's signs, sum_k s_k (u_k - 7.5) = 7.5 n - D over a block of n
// dimensions, where
//   D = sum_j 2^j popcount(signs XOR b_j)
// is what these kernels count, exactly (integers), so every SIMD level gives the reference's
// result and the search's ranking does not depend on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace agp::index {

struct ByteRange {
  std::uint32_t begin, end;  // bytes of a plane: one Hadamard block, a multiple of 8 dimensions
};

// out[b * count + i] = D of vector i's block b, for `count` vectors whose top planes
// follow each other `plane` bytes apart. query: the 4 query planes, bit j's plane at j * plane.
void sign_distances(const std::uint8_t* signs, std::size_t plane, std::size_t count,
                    const std::uint8_t* query, std::span<const ByteRange> blocks,
                    std::uint32_t* out);
// The scalar reference every SIMD level is checked against (and the fallback it uses when
// forced by agp/codec/simd.hpp's "reference").
void sign_distances_reference(const std::uint8_t* signs, std::size_t plane, std::size_t count,
                              const std::uint8_t* query, std::span<const ByteRange> blocks,
                              std::uint32_t* out);

// The sign stage's estimates from those distances, for m vectors:
//   est[i] = sum over blocks b of (norms[i * blocks + b] * weight[b]) * (bias[b] - dist[b * m + i])
// in that order of operations (lane by lane, so every level gives the same floats).
void sign_estimates(const std::uint32_t* dist, const float* norms, std::size_t blocks,
                    std::size_t m, const float* weight, const float* bias, float* est);

// Whole codes of at most 4 bits: sum over dimensions k of rotated[k] * centroids[idx[k]] over one
// block of m dimensions. Lane l of 4 accumulates every fourth product of each 16 dimensions, and
// the result is ((l0 + l1) + (l2 + l3)) plus the dimensions after the last whole 16, in order:
// the same floats on every level. centroids: 16 values (codes beyond the codebook never occur).
float code_dot(const std::uint8_t* idx, const float* rotated, std::size_t m,
               const float* centroids);
float code_dot_reference(const std::uint8_t* idx, const float* rotated, std::size_t m,
                         const float* centroids);

}  // namespace agp::index
