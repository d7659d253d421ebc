// Codec golden frames (tests/golden/codec/): real encodings of known tensors for every codec and
// bit width, shared by the generator (make_golden.cpp) and the test (test_golden.cpp).
//
// For each packet of golden_packets() the directory holds
//   <tensor>.npy                     the source tensor (bf16 as '<u2' bit patterns)
//   <stem>.ptp                       its frames, back to back (one frame, or one per chunk)
//   <stem>.decoded.npy               the frames decoded into f32, the tensor's shape
// with <stem> = <tensor>.<codec> or <tensor>.<codec>.chunks<N> (chunks of N vectors), and
// manifest.tsv listing them. Every header field is fixed, so the bytes are deterministic.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::test {

struct GoldenTensor {
  std::string name;  // file stem of the source .npy
  DType dtype = DType::kF32;
  std::vector<std::uint64_t> shape;
  std::uint32_t vector_axis = 0;
  ptp::Layout layout = ptp::Layout::kUnspecified;
};

struct GoldenPacket {
  std::string tensor;               // a GoldenTensor name
  std::string codec;                // a short codec name (ptp::parse_packet_codec)
  std::uint64_t chunk_vectors = 0;  // 0: one whole packet; else chunks of this many vectors
  std::string stem() const;
  // How GoogleTest prints it in test names and failures.
  friend void PrintTo(const GoldenPacket& p, std::ostream* os) { *os << p.stem(); }
};

// The calibration the calibrated packets (cal<b>) are coded with: dim 256, a mean, scales that
// fall from 8 to 0.24 over the components and 16 components of almost nothing (groups sent as
// zero), written as kGoldenCalibrationFile beside the frames.
inline constexpr const char* kGoldenCalibrationFile = "golden.agpcal";
const ptp::CalibrationFile& golden_calibration();

std::vector<GoldenTensor> golden_tensors();
std::vector<GoldenPacket> golden_packets();
const GoldenTensor* find_golden_tensor(const std::string& name);

// The tensor's generated values in its dtype, C order (integer arithmetic and correctly rounded
// IEEE operations only, so every platform makes the same bytes).
std::vector<std::byte> golden_tensor_bytes(const GoldenTensor& t);

// Encodes `p` from `view` (the tensor's values): every frame, back to back.
Result<std::vector<std::byte>> encode_golden(const GoldenPacket& p, const GoldenTensor& t,
                                             const codec::TensorView& view);

// Parses and decodes the frames of one packet into `out` (the tensor's shape; any float dtype).
// Every vector must be covered exactly once. Returns the number of frames.
Result<std::size_t> decode_golden(std::span<const std::byte> frames, const GoldenTensor& t,
                                  const codec::TensorView& out);

// The manifest.tsv text for the files in `dir`.
Result<std::string> golden_manifest(const std::string& dir);

}  // namespace agp::test
