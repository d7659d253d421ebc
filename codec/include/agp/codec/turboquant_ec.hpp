// TurboQuant-EC: the high-fidelity mode. Same bits per value as plain TurboQuant, less error, for a
// whole packet at a time (its output size depends on the data):
//  1. the packet's per-channel mean is removed (sent once, f16): real hidden states carry large
//     channel offsets that cost bits in every vector otherwise;
//  2. each vector's residual is rotated exactly as TurboQuant-MSE does (per-block norms, seeded
//     signs, Walsh-Hadamard blocks);
//  3. the rotated coordinates go through a uniform quantizer whose step is chosen so that the
//     packet meets a bit budget, with each level reconstructed at the mean of the coordinates it
//     took (the exact conditional mean, sent as a small table);
//  4. the level indices are entropy coded by zstd (Huffman on the level bytes).
// A uniform quantizer with entropy coding sits about 0.25 bit from the rate-distortion bound, where
// a fixed-rate Lloyd-Max quantizer sits about 0.6 bit from it at 4 bits. Levels are bytes (at most
// 255 of them), which covers budgets up to about 6 bits per value; above that use fixed_bits,
// which keeps steps 1 and 2 and quantizes with TurboQuant-MSE's codebooks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/status.hpp"

namespace agp::codec {

struct EcConfig {
  // Budget for everything this codec writes (side data, norms, codes) plus `reserved_bytes`, per
  // value of the tensor.
  double bits_per_value = 4.0;
  // Bytes of the budget left for the frame around the parts (prefix, header, padding).
  std::uint64_t reserved_bytes = 640;
  std::uint64_t seed = 0x5eed;
  // Level 1 codes the level bytes within about 1% of their entropy; level 3 searches for matches
  // that noise-like levels do not have and codes them about 9% worse.
  int zstd_level = 1;
  // 0: entropy-coded levels sized to bits_per_value. 1..8: fixed-rate TurboQuant-MSE levels of
  // that many bits on the mean-removed residual (bits_per_value is then ignored); for budgets
  // above what byte-sized levels can use, e.g. 8 bits.
  int fixed_bits = 0;
};

struct EcPacket {
  std::vector<std::byte> side;   // "TQEC" header, step, level range, channel mean, level table
  std::vector<std::byte> norms;  // f16 per Hadamard block per vector
  std::vector<std::byte> codes;  // zstd frame of one level byte per value, vector-major
  std::uint64_t bytes() const { return side.size() + norms.size() + codes.size(); }
};

// kInvalidArgument for a bad view or a budget too small to hold the side data and norms;
// kNonFiniteInput / kValueOutOfRange as for TurboQuant-MSE.
Result<EcPacket> ec_encode(const TensorView& in, const EcConfig& config);
// Decodes into `out` (same shape and vector axis as encoded; any float dtype and strides).
// kBadEncodedData for parts an encoder could not have written.
Status ec_decode(std::span<const std::byte> side, std::span<const std::byte> norms,
                 std::span<const std::byte> codes, const TensorView& out, std::uint64_t seed);

}  // namespace agp::codec
