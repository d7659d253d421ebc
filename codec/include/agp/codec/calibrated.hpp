// The calibrated codec (TurboQuant-Cal): entropy-coded uniform quantization of split states that
// a calibration has put in a decorrelated, variance-sorted basis (the basis itself is folded into
// the checkpoint, so a state arrives already in it; see docs/calibrated_codec.md).
//
// A calibration fixes, for one model and split: the channel mean and contiguous groups of
// components of similar variance. Each chunk of vectors is coded on its own:
//  1. z = (x - mean) / step, with one step per chunk chosen to meet a bit budget;
//  2. per group: q = round(z); k low bits of q are sent raw (k chosen so the rest, h = q >> k, has
//     a standard deviation of 2..4), and h is coded with one of the static prefix codes of
//     entropy_tables.inc (the group's choice, the cheapest for its values); groups whose values
//     are all far below one step are sent as zero (no bits);
//  3. rare values outside the code's alphabet are escapes, sent as int32.
// Decoding is table-driven: several symbols per lookup, no per-chunk table building.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/status.hpp"

namespace agp::codec {

// Bounds every calibration is held to (Calibration::validate): values beyond the magnitude make
// the codec's float arithmetic overflow; more groups cost side data on every chunk and buy nothing.
constexpr double kMaxCalibrationMagnitude = 1e16;
constexpr std::size_t kMaxCalibrationGroups = 256;

// What the codec needs from a calibration (the file format lives in ptp/calibration_file.hpp).
struct Calibration {
  std::uint32_t dim = 0;
  std::vector<float> mean;                   // [dim], subtracted before quantizing
  std::vector<float> scale;                  // [dim], calibration standard deviations
  std::vector<std::uint32_t> group_starts;   // first component of each group; [0] = 0, increasing
  std::uint64_t id = 0;                      // identifies the calibration (its file's checksum)

  std::size_t group_count() const { return group_starts.size(); }
  std::uint32_t group_end(std::size_t g) const {
    return g + 1 < group_starts.size() ? group_starts[g + 1] : dim;
  }
  // kInvalidArgument naming the first field out of contract.
  Status validate() const;
};

// Contiguous groups of components whose calibration standard deviations (sorted descending)
// stay within `ratio` of the group's first, at most `max_groups` (the ratio widens to fit).
std::vector<std::uint32_t> make_calibration_groups(std::span<const float> scale, double ratio,
                                                   std::size_t max_groups);

struct CalConfig {
  // Budget for everything the chunk writes (side data and codes) plus `reserved_bytes`, per value.
  // A chunk whose overhead would take more than half of it gets it all for its codes (exceeding
  // the budget by its overhead).
  double bits_per_value = 4.0;
  // Bytes of the budget left for the frame around the chunk (prefix, header, section table).
  std::uint64_t reserved_bytes = 448;
  // A chunk of at most this many values is converted to f32 once and kept while the step is
  // searched (4 bytes per value, per encoding thread); a larger one is read from the input again
  // in each pass, slower. The chunk's bytes are the same either way.
  std::uint64_t max_cached_values = std::uint64_t{1} << 22;
};

struct CalChunk {
  std::vector<std::byte> side;   // step, calibration id, vectors, per-group mode/k/table/bytes
  std::vector<std::byte> codes;  // per coded group: prefix-coded stream, raw low bits; escapes
  std::uint64_t bytes() const { return side.size() + codes.size(); }
};

// Bytes of the side data for a calibration with `groups` groups.
std::uint64_t cal_side_bytes(std::size_t groups);

// Encodes vectors [first, first + n) of `in` (dim = calibration.dim). kInvalidArgument for a bad
// view, range or budget; kNonFiniteInput for NaN/Inf.
Result<CalChunk> cal_encode(const TensorView& in, std::uint64_t first, std::uint64_t n,
                            const Calibration& calibration, const CalConfig& config);
// Decodes a chunk into vectors [first, first + n) of `out`. kBadEncodedData for data an encoder
// could not have written (and for a chunk made with another calibration: its id differs).
Status cal_decode(std::span<const std::byte> side, std::span<const std::byte> codes,
                  const Calibration& calibration, const TensorView& out, std::uint64_t first,
                  std::uint64_t n);

// The step and calibration id a chunk's side data names (for inspection); kBadEncodedData if
// too short.
struct CalSideSummary {
  float step = 0;
  std::uint64_t calibration_id = 0;
  std::uint32_t vectors = 0;
};
Result<CalSideSummary> cal_side_summary(std::span<const std::byte> side);

}  // namespace agp::codec
