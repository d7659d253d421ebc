// The index's internals: the bit-plane layout round trip, and every SIMD level of the search
// kernels against their scalar references (bit-identical, so the ranking does not depend on the
// CPU), then whole searches on every level.
#include <gtest/gtest.h>

#include <random>

#include "agp/codec/simd.hpp"
#include "agp/index/index.hpp"
#include "bit_planes.hpp"
#include "scan_kernels.hpp"

namespace agp::index {
namespace {

struct LevelGuard {
  ~LevelGuard() { (void)codec::force_simd_level(""); }
};

// The automatic choice ("", which may be a level the codec does not list, such as AVX3_DL for
// the index's popcounts), then every listed level down to "reference".
std::vector<std::string> every_level() {
  std::vector<std::string> levels = codec::simd_levels();
  levels.insert(levels.begin(), "");
  return levels;
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed, unsigned below = 256) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng() % below);
  return out;
}

TEST(IndexBitPlanes, EveryWidthAndDimensionRoundTrips) {
  for (const std::uint32_t dim : {1u, 5u, 8u, 13u, 100u, 768u}) {
    for (int bits = 1; bits <= 8; ++bits) {
      const auto idx = random_bytes(dim, dim * 10 + static_cast<unsigned>(bits), 1u << bits);
      std::vector<std::uint8_t> top(plane_bytes(dim)), lower(plane_bytes(dim) * (bits - 1) + 1);
      codes_to_planes(idx.data(), dim, bits, top.data(), lower.data());
      std::vector<std::uint8_t> back(plane_bytes(dim) * 8);
      planes_to_codes(top.data(), lower.data(), dim, bits, back.data());
      for (std::uint32_t k = 0; k < dim; ++k) {
        ASSERT_EQ(back[k], idx[k]) << "dim " << dim << " bits " << bits << " k " << k;
        // The top plane is the code's top bit: the sign of the rotated coordinate.
        ASSERT_EQ((top[k / 8] >> (k % 8)) & 1, idx[k] >> (bits - 1));
      }
    }
  }
}

// Plane layouts that take each path: one pass over short blocks (768 = 512 + 256, 256), long
// blocks (1024, 4096), and blocks that end between steps (384 = 256 + 128, 24 = 16 + 8).
TEST(IndexKernels, SignDistancesOnEveryLevelEqualTheReference) {
  LevelGuard guard;
  const std::vector<std::vector<ByteRange>> layouts = {{{0, 64}, {64, 96}}, {{0, 32}},
                                                       {{0, 128}},          {{0, 512}},
                                                       {{0, 32}, {32, 48}}, {{0, 2}, {2, 3}}};
  for (const auto& blocks : layouts) {
    const std::size_t plane = blocks.back().end, count = 37;
    const auto signs = random_bytes(plane * count, plane);
    const auto query = random_bytes(4 * plane, plane + 1);
    std::vector<std::uint32_t> want(count * blocks.size());
    sign_distances_reference(signs.data(), plane, count, query.data(), blocks, want.data());
    // Spot check the reference itself: all query planes equal to the signs give D = 0.
    std::vector<std::uint8_t> same;
    for (int j = 0; j < 4; ++j) same.insert(same.end(), signs.begin(), signs.begin() + plane);
    std::vector<std::uint32_t> zero(blocks.size());
    sign_distances_reference(signs.data(), plane, 1, same.data(), blocks, zero.data());
    for (auto d : zero) EXPECT_EQ(d, 0u);
    for (const std::string& level : every_level()) {
      ASSERT_TRUE(codec::force_simd_level(level)) << level;
      std::vector<std::uint32_t> got(want.size());
      sign_distances(signs.data(), plane, count, query.data(), blocks, got.data());
      EXPECT_EQ(got, want) << level << ", plane of " << plane << " bytes";
    }
  }
}

TEST(IndexKernels, SignEstimatesAndCodeDotsOnEveryLevelEqualTheReference) {
  LevelGuard guard;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> g;
  for (const std::size_t blocks : {1u, 2u, 3u}) {
    const std::size_t m = 53;
    std::vector<std::uint32_t> dist(blocks * m);
    for (auto& d : dist) d = static_cast<std::uint32_t>(rng() % 5000);
    std::vector<float> norms(blocks * m), weight(blocks), bias(blocks);
    for (auto& n : norms) n = std::fabs(g(rng));
    for (auto& w : weight) w = g(rng);
    for (auto& b : bias) b = 2000 + 100 * g(rng);
    ASSERT_TRUE(codec::force_simd_level("reference"));
    std::vector<float> want(m);
    sign_estimates(dist.data(), norms.data(), blocks, m, weight.data(), bias.data(), want.data());
    for (const std::string& level : every_level()) {
      ASSERT_TRUE(codec::force_simd_level(level)) << level;
      std::vector<float> got(m);
      sign_estimates(dist.data(), norms.data(), blocks, m, weight.data(), bias.data(), got.data());
      EXPECT_EQ(got, want) << level << ", " << blocks << " blocks";
    }
  }
  for (const std::size_t dims : {4u, 16u, 100u, 256u, 512u}) {
    const auto idx = random_bytes(dims, dims, 16);
    std::vector<float> rotated(dims), centroids(16);
    for (auto& r : rotated) r = g(rng);
    for (auto& c : centroids) c = g(rng);
    const float want = code_dot_reference(idx.data(), rotated.data(), dims, centroids.data());
    double exact = 0;
    for (std::size_t k = 0; k < dims; ++k) exact += double{rotated[k]} * centroids[idx[k]];
    EXPECT_NEAR(want, exact, 1e-4 * static_cast<double>(dims));
    for (const std::string& level : every_level()) {
      ASSERT_TRUE(codec::force_simd_level(level)) << level;
      EXPECT_EQ(code_dot(idx.data(), rotated.data(), dims, centroids.data()), want)
          << level << ", " << dims << " dimensions";
    }
  }
}

// The same hits with the same scores on every level, one stage and two.
TEST(IndexKernels, SearchesOnEveryLevelAgree) {
  LevelGuard guard;
  for (const std::uint32_t dim : {768u, 384u, 100u}) {
    std::mt19937_64 rng(dim);
    std::normal_distribution<float> g;
    std::vector<float> data(600 * std::size_t{dim}), query(dim);
    for (auto& v : data) v = g(rng);
    for (auto& v : query) v = g(rng);
    auto index = Index::create(dim, {4});
    ASSERT_TRUE(index);
    ASSERT_TRUE(index->add(data));
    for (const std::size_t coarse : {0u, 60u}) {
      ASSERT_TRUE(codec::force_simd_level("reference"));
      auto want = index->search(query, {10, 0, coarse});
      ASSERT_TRUE(want);
      for (const std::string& level : every_level()) {
        ASSERT_TRUE(codec::force_simd_level(level)) << level;
        auto got = index->search(query, {10, 0, coarse});
        ASSERT_TRUE(got);
        ASSERT_EQ(got->size(), want->size());
        for (std::size_t i = 0; i < got->size(); ++i) {
          EXPECT_EQ((*got)[i].id, (*want)[i].id) << level << " dim " << dim << " rank " << i;
          EXPECT_EQ((*got)[i].score, (*want)[i].score) << level << " dim " << dim;
        }
      }
    }
  }
}

}  // namespace
}  // namespace agp::index
