// Lloyd-Max scalar quantizer design on exact densities (used by the codebook generator
// codec/tools/make_codebooks.cpp and by the tests that check the committed tables).
//
// Densities are of the standardized post-rotation coordinate z (unit variance):
//  - m == 0: the unit Gaussian N(0,1);
//  - m >= 1: z = sqrt(m) * t where t is one coordinate of a uniformly random unit vector in R^m,
//    density proportional to (1 - z^2/m)^((m-3)/2) on |z| < sqrt(m) (m == 1: the points +-1).
#pragma once

#include <vector>

namespace agp::codec::lloyd {

class Density {
 public:
  explicit Density(int m);
  // Probability mass and first moment of z in [a, b] (a <= b; infinities allowed).
  double mass(double a, double b) const;
  double first_moment(double a, double b) const;
  int block_dim() const { return m_; }

 private:
  double cdf_theta(double theta) const;  // m >= 2: integral of cos^(m-2) from -pi/2, normalized
  int m_;
  double scale_ = 0;          // sqrt(m)
  std::vector<double> grid_;  // cumulative mass on a uniform theta grid over [-pi/2, pi/2]
};

struct Quantizer {
  std::vector<double> centroids;  // ascending, 2^bits entries
  double mse = 0;                 // E[(z - q(z))^2]
  int iterations = 0;
};

// Converged Lloyd-Max iteration for 2^bits levels (stops when no centroid moves more than 1e-12 or
// after max_iterations).
Quantizer design(const Density& d, int bits, int max_iterations = 100000);

// E[(z - q(z))^2] of the nearest-centroid quantizer with these centroids.
double quantizer_mse(const Density& d, const std::vector<double>& centroids);

}  // namespace agp::codec::lloyd
