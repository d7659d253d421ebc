#include "lloyd_max.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace agp::codec::lloyd {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kGridIntervals = 1 << 18;  // Simpson panels over [-pi/2, pi/2]

double gauss_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}
double gauss_pdf(double x) {
  return std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi);
}

}  // namespace

Density::Density(int m) : m_(m) {
  if (m_ < 2) return;
  scale_ = std::sqrt(static_cast<double>(m_));
  // Cumulative integral of cos^(m-2)(theta) by Simpson's rule on each panel; normalized to 1.
  const double h = kPi / kGridIntervals;
  const double p = m_ - 2;
  auto f = [p](double th) { return p == 0 ? 1.0 : std::pow(std::max(0.0, std::cos(th)), p); };
  grid_.assign(kGridIntervals + 1, 0.0);
  double acc = 0;
  for (int i = 0; i < kGridIntervals; ++i) {
    const double a = -kPi / 2 + h * i;
    acc += h / 6 * (f(a) + 4 * f(a + h / 2) + f(a + h));
    grid_[i + 1] = acc;
  }
  for (double& g : grid_) g /= acc;
}

double Density::cdf_theta(double theta) const {
  const double pos = (theta + kPi / 2) / (kPi / kGridIntervals);
  if (pos <= 0) return 0;
  if (pos >= kGridIntervals) return 1;
  const auto i = static_cast<int>(pos);
  const double frac = pos - i;
  return grid_[i] + frac * (grid_[i + 1] - grid_[i]);
}

double Density::mass(double a, double b) const {
  if (m_ == 0) return gauss_cdf(b) - gauss_cdf(a);
  if (m_ == 1) return 0.5 * ((a <= -1 && -1 <= b) ? 1 : 0) + 0.5 * ((a <= 1 && 1 <= b) ? 1 : 0);
  auto th = [this](double z) { return std::asin(std::clamp(z / scale_, -1.0, 1.0)); };
  return cdf_theta(th(b)) - cdf_theta(th(a));
}

double Density::first_moment(double a, double b) const {
  if (m_ == 0) return gauss_pdf(a) - gauss_pdf(b);
  if (m_ == 1) return -0.5 * ((a <= -1 && -1 <= b) ? 1 : 0) + 0.5 * ((a <= 1 && 1 <= b) ? 1 : 0);
  // E[z; a<z<b] = sqrt(m) * integral sin(th) cos^(m-2)(th) / Z  =  sqrt(m) [-cos^(m-1)/(m-1)] / Z,
  // with Z = integral of cos^(m-2) over [-pi/2, pi/2] (the Wallis integral, via lgamma).
  const double ta = std::asin(std::clamp(a / scale_, -1.0, 1.0));
  const double tb = std::asin(std::clamp(b / scale_, -1.0, 1.0));
  const double n = m_ - 1;
  const double log_z = 0.5 * std::log(kPi) + std::lgamma((m_ - 1) / 2.0) - std::lgamma(m_ / 2.0);
  auto prim = [&](double th) {
    const double c = std::cos(th);
    return c <= 0 ? 0.0 : -std::exp(n * std::log(c) - log_z) / n;
  };
  return scale_ * (prim(tb) - prim(ta));
}

double quantizer_mse(const Density& d, const std::vector<double>& c) {
  // E[z^2] = 1 for every density here; MSE = 1 - sum_i (2 c_i M1_i - c_i^2 P_i) over the cells.
  const double inf = std::numeric_limits<double>::infinity();
  double gain = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const double a = i == 0 ? -inf : 0.5 * (c[i - 1] + c[i]);
    const double b = i + 1 == c.size() ? inf : 0.5 * (c[i] + c[i + 1]);
    gain += 2 * c[i] * d.first_moment(a, b) - c[i] * c[i] * d.mass(a, b);
  }
  return 1.0 - gain;
}

Quantizer design(const Density& d, int bits, int max_iterations) {
  const int levels = 1 << bits;
  const double inf = std::numeric_limits<double>::infinity();
  Quantizer q;
  if (d.block_dim() == 1) {  // two points: +-1 (the other levels are never used)
    q.centroids.assign(levels, 0.0);
    for (int i = 0; i < levels; ++i) q.centroids[i] = i < levels / 2 ? -1.0 : 1.0;
    q.mse = 0;
    return q;
  }
  // Start from the asymptotically optimal compander (Panter-Dite): centroid density proportional
  // to f^(1/3), which for a near-Gaussian f is N(0, 3); iterations then have little left to do.
  q.centroids.resize(levels);
  const double limit = d.block_dim() ? std::sqrt(static_cast<double>(d.block_dim())) : 1e9;
  for (int i = 0; i < levels; ++i) {
    const double p = (i + 0.5) / levels;
    double lo = -40, hi = 40;  // invert the N(0,3) CDF by bisection
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      (gauss_cdf(mid / std::sqrt(3.0)) < p ? lo : hi) = mid;
    }
    q.centroids[i] = std::clamp(0.5 * (lo + hi), -0.999 * limit, 0.999 * limit);
  }
  std::vector<double> next(levels);
  for (q.iterations = 0; q.iterations < max_iterations; ++q.iterations) {
    double moved = 0;
    for (int i = 0; i < levels; ++i) {
      const double a = i == 0 ? -inf : 0.5 * (q.centroids[i - 1] + q.centroids[i]);
      const double b = i + 1 == levels ? inf : 0.5 * (q.centroids[i] + q.centroids[i + 1]);
      const double p = d.mass(a, b);
      // The conditional mean lies inside the cell and the support; clamping keeps cells whose mass
      // is at the level of the tabulated CDF's rounding (far tails of small blocks) well-ordered.
      const double lo = std::max(a, -limit), hi = std::min(b, limit);
      next[i] = std::clamp(p > 1e-300 ? d.first_moment(a, b) / p : q.centroids[i], lo, hi);
      moved = std::max(moved, std::abs(next[i] - q.centroids[i]));
    }
    q.centroids.swap(next);
    if (moved < 1e-12) break;  // the tabulated CDF is exact to about 1e-13
  }
  q.mse = quantizer_mse(d, q.centroids);
  return q;
}

}  // namespace agp::codec::lloyd
