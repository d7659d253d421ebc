// Every SIMD level against the scalar reference: the same bytes and the same decoded values, over
// dimensions that hit the tail paths, every bit width and the layouts hosts use.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "agp/codec/codec.hpp"
#include "agp/codec/simd.hpp"

namespace agp::codec {
namespace {

struct LevelGuard {
  ~LevelGuard() { (void)force_simd_level(""); }
};

std::vector<std::byte> encode_with(const Codec& c, const TensorView& in) {
  std::vector<std::byte> all(c.encoded_bytes(in.vector_count()));
  std::vector<std::span<std::byte>> parts;
  std::size_t off = 0;
  for (const PartSpec& p : c.parts()) {
    const std::size_t n = in.vector_count() * p.bytes_per_vector;
    parts.emplace_back(all.data() + off, n);
    off += n;
  }
  const Status s = c.encode_all(in, parts);
  EXPECT_TRUE(s) << s.to_string();
  return all;
}

std::vector<std::byte> decode_with(const Codec& c, const std::vector<std::byte>& all,
                                   const TensorView& like) {
  std::vector<std::span<const std::byte>> parts;
  std::size_t off = 0;
  for (const PartSpec& p : c.parts()) {
    const std::size_t n = like.vector_count() * p.bytes_per_vector;
    parts.emplace_back(all.data() + off, n);
    off += n;
  }
  std::size_t bytes = dtype_size(like.dtype);
  for (auto d : like.shape) bytes *= d;
  std::vector<std::byte> out(bytes);
  TensorView v = like;
  v.data = out.data();
  const Status s = c.decode_all(parts, v);
  EXPECT_TRUE(s) << s.to_string();
  return out;
}

std::vector<std::byte> random_tensor(DType t, std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> b(n * dtype_size(t));
  std::uint64_t s = seed;
  for (std::size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    // Heavy-ish tails: a sum of uniforms with an occasional large value, like real states.
    float v = static_cast<float>(static_cast<std::int64_t>(s >> 11) % 2000001 - 1000000) * 1e-6f;
    if ((s >> 60) == 0) v *= 12.0f;
    if (t == DType::kF32) {
      std::memcpy(b.data() + 4 * i, &v, 4);
    } else {
      const std::uint16_t h = t == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

TEST(SimdLevels, TheReferenceIsAlwaysListedAndForcingWorks) {
  LevelGuard guard;
  const auto levels = simd_levels();
  ASSERT_GE(levels.size(), 2u);
  EXPECT_EQ(levels.back(), "reference");
  for (const auto& l : levels) {
    ASSERT_TRUE(force_simd_level(l)) << l;
    EXPECT_EQ(active_simd_level(), l);
  }
  EXPECT_EQ(force_simd_level("MMX").code(), ErrorCode::kInvalidArgument);
  std::printf("SIMD levels on this machine:");
  for (const auto& l : levels) std::printf(" %s", l.c_str());
  std::printf("\n");
}

struct Layout {
  const char* name;
  DType dtype;
  bool channels_first;  // [1, dim, 1, S] with vector axis 1; otherwise [S, dim]
  std::uint64_t dtype_seed() const {
    return static_cast<std::uint64_t>(dtype) * 7 + channels_first;
  }
};

TEST(SimdLevels, EveryLevelMatchesTheReferenceBitForBit) {
  LevelGuard guard;
  const std::uint32_t dims[] = {1,  2,  3,  7,   8,   9,   15,  16,  17,   31,
                                32, 33, 64, 127, 128, 129, 384, 768, 1280, 4096};
  const Layout layouts[] = {{"rows_f32", DType::kF32, false},
                            {"rows_f16", DType::kF16, false},
                            {"channels_first_f16", DType::kF16, true},
                            {"channels_first_f32", DType::kF32, true},
                            {"rows_bf16", DType::kBF16, false}};
  const auto levels = simd_levels();
  int compared = 0;
  for (const Layout& lay : layouts) {
    for (std::uint32_t dim : dims) {
      const std::uint64_t vectors = dim >= 1280 ? 21 : 37;  // a full tile and a tail tile
      const auto data = random_tensor(lay.dtype, dim * vectors, dim * 31 + lay.dtype_seed());
      const TensorView in =
          lay.channels_first
              ? TensorView::contiguous(data.data(), lay.dtype, {1, dim, 1, vectors}, 1)
              : TensorView::contiguous(data.data(), lay.dtype, {vectors, dim}, 1);
      for (int bits = 1; bits <= 8; ++bits) {
        if (dim >= 1280 && bits != 4 && bits != 8 && bits != 1) continue;  // keep the run short
        CodecConfig cfg;
        cfg.bits = bits;
        auto codec = std::move(make_codec(cfg, dim)).value();
        ASSERT_TRUE(force_simd_level("reference"));
        const auto ref_bytes = encode_with(*codec, in);
        const auto ref_out = decode_with(*codec, ref_bytes, in);
        for (const auto& level : levels) {
          if (level == "reference") continue;
          ASSERT_TRUE(force_simd_level(level));
          SCOPED_TRACE(std::string(lay.name) + " dim=" + std::to_string(dim) +
                       " bits=" + std::to_string(bits) + " level=" + level);
          ASSERT_EQ(encode_with(*codec, in), ref_bytes);
          ASSERT_EQ(decode_with(*codec, ref_bytes, in), ref_out);
          ++compared;
        }
      }
    }
  }
  EXPECT_GT(compared, 100);
}

// Coordinates a hair below a decision boundary that lies on an edge of the quantizer's lookup
// table (boundary 0 of the symmetric tables is one): every level must pick the lower code.
// Two values of a 2-dim block rotate to (x0 + x1, x0 - x1) / norm, so x = {1 - 2^-24, -1} puts the
// second coordinate just below 0.
TEST(SimdLevels, CoordinatesJustBelowABoundaryGetTheSameCodeOnEveryLevel) {
  LevelGuard guard;
  std::vector<float> x;
  for (int k = 0; k < 40; ++k) {  // a full tile and a tail
    const float e = std::ldexp(1.0f, -24 + (k % 5));
    x.push_back(1.0f - e);
    x.push_back(k % 2 ? -1.0f : 1.0f);
  }
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {40, 2}, 1);
  for (int bits = 1; bits <= 8; ++bits) {
    CodecConfig cfg;
    cfg.bits = bits;
    auto codec = std::move(make_codec(cfg, 2)).value();
    ASSERT_TRUE(force_simd_level("reference"));
    const auto ref_bytes = encode_with(*codec, in);
    for (const auto& level : simd_levels()) {
      ASSERT_TRUE(force_simd_level(level));
      EXPECT_EQ(encode_with(*codec, in), ref_bytes) << "bits=" << bits << " level=" << level;
    }
  }
}

}  // namespace
}  // namespace agp::codec
