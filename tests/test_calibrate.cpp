// The calibration's basis: orthonormal, sorted by variance, the same bytes from the same states.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "agp/fidelity/calibrate.hpp"

namespace agp::ptp {
namespace {

TEST(Calibrate, BasisIsOrthonormalSortedAndDeterministic) {
  std::mt19937 rng(9);
  std::normal_distribution<float> g;
  const std::uint32_t dim = 24;
  std::vector<float> x(2000 * dim);
  for (std::size_t v = 0; v < 2000; ++v) {
    const float a = g(rng), b = g(rng);
    for (std::uint32_t j = 0; j < dim; ++j) {
      x[v * dim + j] = 1.0f + 3.0f * a * std::cos(0.3f * static_cast<float>(j)) + 0.5f * b * std::sin(0.7f * static_cast<float>(j)) + 0.1f * g(rng);
    }
  }
  auto a = fidelity::calibrate_from_states(x.data(), 2000, dim, {});
  auto b = fidelity::calibrate_from_states(x.data(), 2000, dim, {});
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(serialize_calibration(a->file), serialize_calibration(b->file));
  for (std::uint32_t i = 0; i < dim; ++i) {
    for (std::uint32_t j = 0; j < dim; ++j) {
      double dot = 0;
      for (std::uint32_t k = 0; k < dim; ++k) dot += double(a->basis[k * dim + i]) * a->basis[k * dim + j];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-5);
    }
  }
  for (std::uint32_t j = 1; j < dim; ++j) EXPECT_GE(a->file.calibration.scale[j - 1], a->file.calibration.scale[j]);
  EXPECT_GT(a->file.calibration.scale[0], 5 * a->file.calibration.scale[2]);
}

}  // namespace
}  // namespace agp::ptp
