// Calibration of the calibrated codec for one model and split: from split states (saved, or
// computed by running the model over calibration text), the principal-component basis the
// checkpoint is to be folded into, and the calibration file (mean and scales in that basis,
// component groups). See docs/calibrated_codec.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agp/fidelity/llama.hpp"
#include "agp/ptp/calibration_file.hpp"

namespace agp::fidelity {

struct CalibrateOptions {
  double group_ratio = 1.189207115002721;  // 2^(1/4): a group's scales within a quarter octave
  std::size_t max_groups = 64;
  std::string info;  // JSON text stored in the file (what was calibrated on what)
};

struct Calibrated {
  ptp::CalibrationFile file;
  // [dim * dim], row-major: basis[i * dim + j] is channel i's weight in component j, so a state
  // x (row) in the basis is x * basis. Components by decreasing variance; each column's largest
  // entry positive (a deterministic sign).
  std::vector<float> basis;
  std::uint64_t vectors = 0;
};

// From states x[n * dim] (n >= 2). kInvalidArgument for too few or non-finite states.
Result<Calibrated> calibrate_from_states(const float* x, std::uint64_t n, std::uint32_t dim,
                                         const CalibrateOptions& options);

// The states entering layer `split` for each window (teacher-forced, from position 0), in order.
Result<std::vector<float>> split_states(const LlamaModel& model, int split,
                                        const std::vector<std::vector<int>>& windows);

// Calibration text for a byte-level model trained on C/C++ headers: `count` windows of `length`
// bytes from the regular files under `root` (the system's headers), a window at a seeded offset
// of each file of at least 4 * length bytes, files in a seeded order, leaving out every file that
// holds one of the evaluation windows' long lines (the three longest complete lines of 30 or more
// characters of each window, compared stripped), so calibration and scoring text are disjoint.
struct CalibrationText {
  std::vector<std::vector<int>> windows;
  std::uint64_t files_seen = 0, files_excluded = 0;
  std::uint64_t xxh3 = 0;  // of the windows' bytes, in order: which text this was
};
Result<CalibrationText> calibration_text_from_headers(const std::string& root,
                                                      const std::vector<std::vector<int>>& eval,
                                                      int count, int length, std::uint64_t seed);

// x[n * dim] times the basis (or its transpose, back to channels), in place.
void to_basis(const std::vector<float>& basis, std::uint32_t dim, float* x, std::uint64_t n);
void from_basis(const std::vector<float>& basis, std::uint32_t dim, float* x, std::uint64_t n);

}  // namespace agp::fidelity
