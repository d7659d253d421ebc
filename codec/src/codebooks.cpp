#include "codebooks.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <mutex>

namespace agp::codec {
namespace {
#include "codebook_tables.inc"

constexpr int kDims = static_cast<int>(sizeof(kCodebookDims) / sizeof(kCodebookDims[0]));
constexpr int kFloatsPerRow = 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256;  // b = 1..8

int row_of(int block_dim) {
  for (int r = 0; r < kDims; ++r) {
    if (kCodebookDims[r] == block_dim) return r;
  }
  return -1;
}

}  // namespace

Codebook::Codebook(int block_dim, int bits, const float* centroids, double mse)
    : block_dim_(block_dim), bits_(bits), centroids_(centroids), mse_(mse) {
  const int n = levels();
  boundaries_.resize(n - 1);
  for (int i = 0; i + 1 < n; ++i) boundaries_[i] = 0.5f * (centroids[i] + centroids[i + 1]);
  const float span = std::max(std::abs(centroids[0]), std::abs(centroids[n - 1])) * 1.05f + 1e-3f;
  lo_ = -span;
  inv_bin_ = kBins / (2 * span);
  // Bin b starts at the code of the left edge of bin b - 1: a z whose position rounds into bin b
  // may lie a hair below bin b's own edge, and the scan in quantize() only moves up. So the
  // lookup returns exactly the number of boundaries <= z, like a binary search would.
  lut_.assign(kBins, 0);
  int idx = 0;
  for (int b = 0; b + 1 < kBins; ++b) {
    const float left = lo_ + static_cast<float>(b) / inv_bin_;
    while (idx < n - 1 && left >= boundaries_[idx]) ++idx;
    lut_[b + 1] = static_cast<std::uint8_t>(idx);
  }
  lut32_.assign(lut_.begin(), lut_.end());
  padded_.assign(256, HUGE_VALF);
  std::copy(boundaries_.begin(), boundaries_.end(), padded_.begin());
  for (int b = 0; b < kBins; ++b) {
    const int next = b + 1 < kBins ? lut_[b + 1] : n - 1;
    max_steps_ = std::max(max_steps_, next - lut_[b]);
  }
}

const Codebook& codebook(int block_dim, int bits) {
  static std::once_flag once;
  static std::vector<std::unique_ptr<Codebook>> all;  // [row * 8 + bits - 1]
  std::call_once(once, [] {
    all.resize(kDims * 8);
    for (int r = 0; r < kDims; ++r) {
      const float* row = kCodebookCentroids + r * kFloatsPerRow;
      int offset = 0;
      for (int b = 1; b <= 8; ++b) {
        all[r * 8 + b - 1] =
            std::make_unique<Codebook>(kCodebookDims[r], b, row + offset, kCodebookMse[r][b - 1]);
        offset += 1 << b;
      }
    }
  });
  const int r = row_of(block_dim);
  if (r < 0 || bits < 1 || bits > 8) return *all[0];  // callers validate first; never reached
  return *all[r * 8 + bits - 1];
}

}  // namespace agp::codec
