// Fidelity metrics: how far the split state moved, and how far the next-token distributions moved.
#pragma once

#include <cstdint>

namespace agp::fidelity {

// Error of a decoded split state, accumulated over vectors. rel_mse is the mean over vectors of
// ||x - x'||^2 / ||x||^2 (the fixture's definition); snr_db is 10 log10(sum ||x||^2 / sum ||x -
// x'||^2).
struct StateError {
  double rel_mse_sum = 0, cosine_sum = 0, energy = 0, noise = 0, max_abs = 0;
  std::uint64_t vectors = 0;
  void add(const float* x, const float* decoded, std::uint64_t vectors, std::uint32_t dim);
  void merge(const StateError& o);
  double rel_mse() const;
  double cosine() const;
  double snr_db() const;
};

// Next-token distributions against the reference's, accumulated over positions: KL(ref || codec)
// in nats, top-1 agreement, and the overlap of the top-5 sets (|A n B| / 5).
struct LogitError {
  double kl_sum = 0, top1 = 0, top5 = 0;
  std::uint64_t positions = 0;
  void add(const float* ref_logits, const float* logits, std::uint64_t positions, int vocab);
  void merge(const LogitError& o);
  double kl() const { return positions ? kl_sum / static_cast<double>(positions) : 0.0; }
  double top1_agree() const { return positions ? top1 / static_cast<double>(positions) : 0.0; }
  double top5_overlap() const { return positions ? top5 / static_cast<double>(positions) : 0.0; }
};

}  // namespace agp::fidelity
