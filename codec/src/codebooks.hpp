// Internal: the committed Lloyd-Max codebooks (codebook_tables.inc) with fast nearest-centroid
// lookup.
#pragma once

#include <cstdint>
#include <vector>

namespace agp::codec {

class Codebook {
 public:
  Codebook(int block_dim, int bits, const float* centroids, double mse);
  int bits() const { return bits_; }
  int levels() const { return 1 << bits_; }
  int block_dim() const { return block_dim_; }  // 0: unit Gaussian
  const float* centroids() const { return centroids_; }
  double mse() const { return mse_; }
  // Decision boundary between centroid i and i + 1 (their midpoint, as quantize() uses it).
  float boundary(int i) const { return boundaries_[i]; }

  // The tables behind quantize(), for the vectorized quantizer: it must return the same index.
  struct Lut {
    float lo, inv_bin;
    int bins;
    const std::int32_t* start;  // lowest candidate index per bin
    const float* boundaries;    // 256 entries, +inf past the last boundary
    int max_steps;              // most boundaries any bin holds
  };
  Lut lut() const { return {lo_, inv_bin_, kBins, lut32_.data(), padded_.data(), max_steps_}; }
  // Index of the nearest centroid of a standardized coordinate (ties go up; NaN goes to 0).
  std::uint8_t quantize(float z) const {
    float pos = (z - lo_) * inv_bin_;
    pos = pos < 0 ? 0 : (pos > kBins - 1 ? kBins - 1 : pos);
    int idx = lut_[static_cast<int>(pos)];
    while (idx < levels() - 1 && z >= boundaries_[idx]) ++idx;
    return static_cast<std::uint8_t>(idx);
  }

 private:
  static constexpr int kBins = 4096;
  int block_dim_;
  int bits_;
  const float* centroids_;
  double mse_;
  std::vector<float> boundaries_;  // levels - 1 midpoints
  std::vector<std::uint8_t> lut_;  // lowest candidate index per bin
  std::vector<std::int32_t> lut32_;
  std::vector<float> padded_;
  int max_steps_ = 0;
  float lo_ = 0, inv_bin_ = 0;
};

// The codebook for Walsh-Hadamard blocks of `block_dim` values (a power of two up to 4096; 0 for
// the unit Gaussian) at `bits` = 1..8. Tables are built once, on first use, thread-safely.
const Codebook& codebook(int block_dim, int bits);

}  // namespace agp::codec
