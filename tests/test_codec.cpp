// The codec: codebooks, rotation, packing, TurboQuant-MSE and the baselines.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "agp/codec/codec.hpp"
#include "agp/codec/lossless.hpp"
#include "agp/codec/simd.hpp"
#include "agp/codec/tensor_view.hpp"
#include "agp/codec/thread_pool.hpp"
#include "bitpack.hpp"
#include "codebooks.hpp"
#include "lloyd_max.hpp"
#include "rotation.hpp"

namespace agp::codec {
namespace {

// Portable deterministic N(0,1) (Box-Muller on splitmix64), independent of the standard library.
class Gauss {
 public:
  explicit Gauss(std::uint64_t seed) : s_(seed) {}
  double next() {
    if (has_) {
      has_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(bits() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(bits() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * M_PI * u2);
    has_ = true;
    return r * std::cos(2 * M_PI * u2);
  }

 private:
  std::uint64_t bits() {
    s_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = s_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t s_;
  bool has_ = false;
  double spare_ = 0;
};

std::vector<float> unit_vectors(std::size_t n, std::uint32_t dim, std::uint64_t seed) {
  Gauss g(seed);
  std::vector<float> x(n * dim);
  for (std::size_t v = 0; v < n; ++v) {
    double ss = 0;
    for (std::uint32_t i = 0; i < dim; ++i) {
      x[v * dim + i] = static_cast<float>(g.next());
      ss += static_cast<double>(x[v * dim + i]) * x[v * dim + i];
    }
    const double inv = 1.0 / std::sqrt(ss);
    for (std::uint32_t i = 0; i < dim; ++i)
      x[v * dim + i] = static_cast<float>(x[v * dim + i] * inv);
  }
  return x;
}

struct Encoded {
  std::vector<std::vector<std::byte>> parts;
  std::vector<std::span<std::byte>> spans() {
    std::vector<std::span<std::byte>> s;
    for (auto& p : parts) s.emplace_back(p);
    return s;
  }
  std::vector<std::span<const std::byte>> cspans() const {
    std::vector<std::span<const std::byte>> s;
    for (const auto& p : parts) s.emplace_back(p);
    return s;
  }
};

Encoded alloc(const Codec& c, std::uint64_t vectors) {
  Encoded e;
  for (const PartSpec& p : c.parts()) e.parts.emplace_back(vectors * p.bytes_per_vector);
  return e;
}

std::unique_ptr<Codec> tq(std::uint32_t dim, int bits, std::uint64_t seed = 0x5eed,
                          DType norm = DType::kF16) {
  CodecConfig c;
  c.id = CodecId::kTurboQuantMse;
  c.bits = bits;
  c.seed = seed;
  c.norm_dtype = norm;
  auto r = make_codec(c, dim);
  EXPECT_TRUE(r) << r.status().to_string();
  return std::move(r).value();
}

// Mean over vectors of the squared error; x and y are [n, dim].
double mean_sq_error(const std::vector<float>& x, const std::vector<float>& y, std::size_t n) {
  double e = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    e += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  return e / static_cast<double>(n);
}

std::vector<float> round_trip(const Codec& c, const std::vector<float>& x, std::size_t n) {
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {n, c.dim()}, 1);
  Encoded e = alloc(c, n);
  const auto out_spans = e.spans();
  EXPECT_TRUE(c.encode(in, 0, n, out_spans));
  std::vector<float> y(x.size());
  const TensorView out = TensorView::contiguous(y.data(), DType::kF32, {n, c.dim()}, 1);
  const auto in_spans = e.cspans();
  EXPECT_TRUE(c.decode(in_spans, out, 0, n));
  return y;
}

// ---------- codebooks ----------

TEST(Codebook, GaussianLloydMaxMatchesTheLiterature) {
  // Max (1960): 0.3634, 0.1175, 0.03455, 0.009497 for 2, 4, 8, 16 levels. Our converged 16-level
  // value is 0.009501 (20.22 dB, as Jayant and Noll tabulate); the tolerance covers both.
  const double expected[] = {0.3634, 0.1175, 0.03455, 0.009497};
  for (int b = 1; b <= 4; ++b) {
    EXPECT_NEAR(codebook(0, b).mse(), expected[b - 1], expected[b - 1] * 1e-3) << "b=" << b;
  }
  for (int b = 5; b <= 8; ++b) {  // towards the high-rate limit pi*sqrt(3)/2 = 2.72 / 4^b
    const double scaled = codebook(0, b).mse() * std::pow(4.0, b);
    EXPECT_GT(scaled, b >= 7 ? 2.65 : 2.5) << "b=" << b;
    EXPECT_LT(scaled, 2.73) << "b=" << b;
  }
}

TEST(Codebook, CommittedTablesAreLloydMaxFixedPoints) {
  for (int m : {0, 2, 16, 128, 1024, 4096}) {
    const lloyd::Density d(m);
    for (int b = 1; b <= 8; ++b) {
      const Codebook& cb = codebook(m, b);
      std::vector<double> c(cb.centroids(), cb.centroids() + cb.levels());
      for (int i = 0; i < cb.levels(); ++i) {
        const double lo = i == 0 ? -INFINITY : 0.5 * (c[i - 1] + c[i]);
        const double hi = i + 1 == cb.levels() ? INFINITY : 0.5 * (c[i] + c[i + 1]);
        const double mass = d.mass(lo, hi);
        EXPECT_TRUE(i == 0 || c[i] >= c[i - 1]) << "m=" << m << " b=" << b << " i=" << i;
        if (m > 0) {
          EXPECT_LE(std::abs(c[i]), std::sqrt(m) + 1e-6);
        }
        if (mass < 1e-9) continue;  // far-tail cells of small blocks: the mean is numerically moot
        const double mean = d.first_moment(lo, hi) / mass;
        EXPECT_NEAR(c[i], mean, 2e-5 * (1 + std::abs(mean)))
            << "m=" << m << " b=" << b << " i=" << i;
      }
      EXPECT_NEAR(lloyd::quantizer_mse(d, c), cb.mse(), cb.mse() * 1e-4) << "m=" << m << " b=" << b;
    }
  }
}

TEST(Codebook, QuantizeFindsTheNearestCentroid) {
  for (int b : {1, 3, 4, 8}) {
    const Codebook& cb = codebook(256, b);
    Gauss g(b);
    for (int k = 0; k < 20000; ++k) {
      const float z = static_cast<float>(g.next() * 1.7);
      const int got = cb.quantize(z);
      int best = 0;
      for (int i = 1; i < cb.levels(); ++i) {
        if (std::abs(z - cb.centroids()[i]) < std::abs(z - cb.centroids()[best])) best = i;
      }
      ASSERT_NEAR(std::abs(z - cb.centroids()[got]), std::abs(z - cb.centroids()[best]), 1e-6f)
          << "b=" << b << " z=" << z;
    }
    EXPECT_EQ(cb.quantize(1e30f), cb.levels() - 1);
    EXPECT_EQ(cb.quantize(-1e30f), 0);
  }
}

// ---------- rotation and packing ----------

TEST(Rotation, BlocksAreTheBinaryDigitsOfTheDimension) {
  for (std::uint32_t dim : {1u, 3u, 7u, 384u, 768u, 1280u, 4096u, 5000u, 12289u}) {
    std::uint32_t covered = 0;
    for (const Block& b : hadamard_blocks(dim)) {
      EXPECT_EQ(b.offset, covered);
      EXPECT_EQ(b.size & (b.size - 1), 0u);
      EXPECT_LE(b.size, 4096u);
      covered += b.size;
    }
    EXPECT_EQ(covered, dim);
  }
  const auto b = hadamard_blocks(1280);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].size, 1024u);
  EXPECT_EQ(b[1].size, 256u);
}

TEST(Rotation, HadamardTwiceIsNTimesIdentity) {
  for (std::uint32_t n : {1u, 2u, 8u, 256u, 4096u}) {
    Gauss g(n);
    std::vector<float> x(n), y(n);
    for (auto& v : x) v = static_cast<float>(g.next());
    y = x;
    fwht(y.data(), n);
    fwht(y.data(), n);
    for (std::uint32_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], static_cast<float>(n) * x[i], 1e-3 * n);
  }
}

TEST(Rotation, SignsAreSeededAndBalanced) {
  EXPECT_EQ(random_signs(1000, 7), random_signs(1000, 7));
  EXPECT_NE(random_signs(1000, 7), random_signs(1000, 8));
  int plus = 0;
  for (float s : random_signs(10000, 1)) plus += s > 0;
  EXPECT_NEAR(plus, 5000, 300);
}

TEST(Bitpack, RoundTripsEveryWidthAndTail) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (std::size_t n : {1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 33u, 1280u}) {
      std::vector<std::uint8_t> idx(n), back(n);
      for (std::size_t i = 0; i < n; ++i)
        idx[i] = static_cast<std::uint8_t>((i * 37 + bits) & ((1 << bits) - 1));
      std::vector<std::uint8_t> packed(packed_bytes(n, bits) + 1, 0xAB);
      pack_bits(idx.data(), n, bits, packed.data());
      EXPECT_EQ(packed.back(), 0xAB) << "wrote past the end";
      unpack_bits(packed.data(), n, bits, back.data());
      ASSERT_EQ(idx, back) << "bits=" << bits << " n=" << n;
    }
  }
  // LSB-first layout: 3-bit indices 1, 2, 3 -> bits 001 010 011 -> byte 0b11010001, 0b0.
  const std::uint8_t idx[] = {1, 2, 3};
  std::uint8_t out[2];
  pack_bits(idx, 3, 3, out);
  EXPECT_EQ(out[0], 0xD1);
  EXPECT_EQ(out[1], 0x00);
}

// ---------- TurboQuant-MSE ----------

// Expected squared error of a unit vector: each block's share of the energy times its codebook MSE.
double expected_unit_mse(std::uint32_t dim, int bits) {
  double e = 0;
  for (const Block& b : hadamard_blocks(dim)) {
    e += static_cast<double>(b.size) / dim * codebook(static_cast<int>(b.size), bits).mse();
  }
  return e;
}

TEST(TurboQuantMse, UnitVectorErrorMatchesTheCodebookAtEveryWidth) {
  for (std::uint32_t dim : {64u, 384u, 768u, 1280u}) {
    for (int bits = 1; bits <= 8; ++bits) {
      const std::size_t n = 600;
      const auto x = unit_vectors(n, dim, dim * 10 + bits);
      const auto c = tq(dim, bits);
      const double got = mean_sq_error(x, round_trip(*c, x, n), n);
      const double want = expected_unit_mse(dim, bits);
      // Sampling spread plus the f16 norm's rounding (relative 2^-11, visible only at 8 bits).
      EXPECT_NEAR(got, want, want * 0.06 + 2e-7) << "dim=" << dim << " bits=" << bits;
    }
  }
}

TEST(TurboQuantMse, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto x = unit_vectors(50, 384, 3);
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {50, 384}, 1);
  auto a = tq(384, 4, 11), b = tq(384, 4, 11), c = tq(384, 4, 12);
  Encoded ea = alloc(*a, 50), eb = alloc(*b, 50), ec = alloc(*c, 50);
  ASSERT_TRUE(a->encode(in, 0, 50, ea.spans()));
  ASSERT_TRUE(b->encode(in, 0, 50, eb.spans()));
  ASSERT_TRUE(c->encode(in, 0, 50, ec.spans()));
  EXPECT_EQ(ea.parts, eb.parts);
  EXPECT_NE(ea.parts[0], ec.parts[0]);
}

TEST(TurboQuantMse, SizesAreKnownBeforeEncoding) {
  const auto c = tq(1280, 4);
  ASSERT_EQ(c->parts().size(), 2u);
  EXPECT_EQ(c->parts()[0].kind, SectionKind::kCodes);
  EXPECT_EQ(c->parts()[0].bytes_per_vector, 640u);
  EXPECT_EQ(c->parts()[1].bytes_per_vector, 4u);  // two blocks (1024 + 256), f16 norms
  EXPECT_EQ(c->encoded_bytes(256), 256u * 644u);
  EXPECT_NEAR(c->bits_per_value(), 4.025, 1e-9);
  EXPECT_EQ(tq(7, 3)->parts()[0].bytes_per_vector, 3u);  // 21 bits, padded to a byte
}

TEST(TurboQuantMse, ChannelsFirstViewEqualsTheTransposedCopy) {
  // [1, C, 1, S] with vector axis 1 (the seed packet layout) against the same data as [S, C].
  const std::uint32_t C = 384, S = 70;
  Gauss g(5);
  std::vector<std::uint16_t> bc1s(C * S), sc(C * S);
  for (std::uint32_t c = 0; c < C; ++c) {
    for (std::uint32_t s = 0; s < S; ++s) {
      bc1s[c * S + s] = f32_to_f16(static_cast<float>(g.next()));
      sc[s * C + c] = bc1s[c * S + s];
    }
  }
  const auto codec = tq(C, 4);
  const TensorView a = TensorView::contiguous(bc1s.data(), DType::kF16, {1, C, 1, S}, 1);
  const TensorView b = TensorView::contiguous(sc.data(), DType::kF16, {S, C}, 1);
  Encoded ea = alloc(*codec, S), eb = alloc(*codec, S);
  ASSERT_TRUE(codec->encode(a, 0, S, ea.spans()));
  ASSERT_TRUE(codec->encode(b, 0, S, eb.spans()));
  EXPECT_EQ(ea.parts, eb.parts);
  // Decoding into both layouts gives the same values in their places.
  std::vector<std::uint16_t> out_a(C * S), out_b(C * S);
  const TensorView da = TensorView::contiguous(out_a.data(), DType::kF16, {1, C, 1, S}, 1);
  const TensorView db = TensorView::contiguous(out_b.data(), DType::kF16, {S, C}, 1);
  ASSERT_TRUE(codec->decode(ea.cspans(), da, 0, S));
  ASSERT_TRUE(codec->decode(eb.cspans(), db, 0, S));
  for (std::uint32_t c = 0; c < C; ++c) {
    for (std::uint32_t s = 0; s < S; ++s) ASSERT_EQ(out_a[c * S + s], out_b[s * C + c]);
  }
}

// Tiles of 16 row-major vectors are transposed in registers; every tile a view can hold (dims
// that are and are not multiples of 4, f16 and f32, batches padded apart so a tile can straddle
// two of them, at every SIMD level) must read and write exactly the elements one by one would.
TEST(VectorAccess, RowTilesMatchElementByElement) {
  struct LevelGuard {
    ~LevelGuard() { (void)force_simd_level(""); }
  } guard;
  constexpr std::size_t K = 16;
  for (DType dtype : {DType::kF16, DType::kF32}) {
    for (std::uint32_t dim : {4u, 7u, 130u}) {
      // [2, 20, dim] with each batch padded by 3 vectors: 40 vectors, uneven across the batches.
      const std::int64_t pad = 3 * static_cast<std::int64_t>(dim);
      const std::size_t elements = static_cast<std::size_t>(2 * (20 * dim + pad));
      std::vector<std::byte> mem(elements * dtype_size(dtype));
      Gauss g(dim);
      for (std::size_t i = 0; i < elements; ++i) {
        const float f = static_cast<float>(g.next());
        if (dtype == DType::kF16) {
          const std::uint16_t h = f32_to_f16(f);
          std::memcpy(mem.data() + 2 * i, &h, 2);
        } else {
          std::memcpy(mem.data() + 4 * i, &f, 4);
        }
      }
      TensorView v = TensorView::contiguous(mem.data(), dtype, {2, 20, dim}, 2);
      v.strides = {20 * static_cast<std::int64_t>(dim) + pad, static_cast<std::int64_t>(dim), 1};
      ASSERT_TRUE(v.validate());
      for (const std::string& level : simd_levels()) {
        ASSERT_TRUE(force_simd_level(level).is_ok());
        const VectorAccess access(v);
        for (std::uint64_t first : {0u, 3u, 10u, 24u}) {
          SCOPED_TRACE(level + " dim " + std::to_string(dim) + " first " + std::to_string(first));
          std::vector<float> tile(K * dim), want(K * dim), one(dim);
          access.gather_lanes(first, K, tile.data());
          for (std::size_t t = 0; t < K; ++t) {
            access.gather(first + t, 1, one.data());
            for (std::uint32_t j = 0; j < dim; ++j) want[j * K + t] = one[j];
          }
          ASSERT_EQ(std::memcmp(tile.data(), want.data(), 4 * tile.size()), 0);
          // Written back through the tile path and element by element: the same bytes.
          std::vector<std::byte> a(mem.size()), b(mem.size());
          TensorView va = v, vb = v;
          va.data = a.data();
          vb.data = b.data();
          for (auto& x : tile) x = x * 3.0f + 0.1f;
          VectorAccess(va).scatter_lanes(first, K, tile.data());
          for (std::size_t t = 0; t < K; ++t) {
            for (std::uint32_t j = 0; j < dim; ++j) one[j] = tile[j * K + t];
            VectorAccess(vb).scatter(first + t, 1, one.data());
          }
          ASSERT_EQ(a, b);
        }
      }
    }
  }
}

TEST(TurboQuantMse, RangesGiveTheSameBytes) {
  const std::size_t n = 300;
  const auto x = unit_vectors(n, 768, 9);
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {n, 768}, 1);
  const auto c = tq(768, 3);
  Encoded whole = alloc(*c, n);
  ASSERT_TRUE(c->encode_all(in, whole.spans()));
  // Vectors [100, 217) on their own.
  Encoded part = alloc(*c, 117);
  ASSERT_TRUE(c->encode(in, 100, 117, part.spans()));
  for (std::size_t p = 0; p < c->parts().size(); ++p) {
    const std::size_t per = c->parts()[p].bytes_per_vector;
    EXPECT_TRUE(std::equal(part.parts[p].begin(), part.parts[p].end(),
                           whole.parts[p].begin() + static_cast<std::ptrdiff_t>(100 * per)));
  }
}

TEST(ThreadPool, RunsEveryTaskExactlyOnceAcrossManyBatches) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (std::size_t batch = 0; batch < 200; ++batch) {
    const std::size_t n = 1 + batch % 17;
    std::vector<std::atomic<int>> hits(n);
    pool.run(n, [&](std::size_t i) { hits[i].fetch_add(1); });
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "batch " << batch;
  }
}

TEST(ThreadPool, TwoThreadsGiveTheSameBytes) {
  const std::size_t n = 300;
  const auto x = unit_vectors(n, 768, 9);
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {n, 768}, 1);
  const auto c = tq(768, 3);
  Encoded whole = alloc(*c, n);
  ASSERT_TRUE(c->encode_all(in, whole.spans()));
  ThreadPool pool(2);
  Encoded threaded = alloc(*c, n);
  ASSERT_TRUE(c->encode_all(in, threaded.spans(), &pool));
  EXPECT_EQ(threaded.parts, whole.parts);
  std::vector<float> y1(x.size()), y2(x.size());
  ASSERT_TRUE(
      c->decode_all(whole.cspans(), TensorView::contiguous(y1.data(), DType::kF32, {n, 768}, 1)));
  ASSERT_TRUE(c->decode_all(whole.cspans(),
                            TensorView::contiguous(y2.data(), DType::kF32, {n, 768}, 1), &pool));
  EXPECT_EQ(y1, y2);
}

TEST(TurboQuantMse, SpecialValuesFollowThePolicy) {
  const auto c = tq(16, 4);
  std::vector<float> x(32, 0.5f);
  Encoded e = alloc(*c, 2);
  auto encode = [&](const std::vector<float>& v) {
    return c->encode(TensorView::contiguous(v.data(), DType::kF32, {2, 16}, 1), 0, 2, e.spans());
  };
  auto bad = x;
  bad[20] = NAN;
  EXPECT_EQ(encode(bad).code(), ErrorCode::kNonFiniteInput);
  bad[20] = INFINITY;
  EXPECT_EQ(encode(bad).code(), ErrorCode::kNonFiniteInput);
  auto huge = x;
  huge[3] = 1e6f;  // norm above f16's range
  EXPECT_EQ(encode(huge).code(), ErrorCode::kValueOutOfRange);
  auto c32 = tq(16, 4, 0x5eed, DType::kF32);
  Encoded e32 = alloc(*c32, 2);
  EXPECT_TRUE(
      c32->encode(TensorView::contiguous(huge.data(), DType::kF32, {2, 16}, 1), 0, 2, e32.spans()));
  // Zero vectors come back as exact zeros; subnormal inputs stay close.
  std::vector<float> tiny(32, 0.0f);
  tiny[16] = 1e-40f;  // an f32 subnormal
  tiny[17] = 6e-8f;   // near f16's smallest subnormal: the norm is stored as a subnormal
  const auto back = round_trip(*c, tiny, 2);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(back[i], 0.0f);  // the zero vector stays exactly zero
  for (int i = 16; i < 32; ++i) EXPECT_NEAR(back[i], tiny[i], 2e-8f);
  // Decoding a NaN norm is refused.
  ASSERT_TRUE(encode(x));
  const std::uint16_t nan16 = 0x7e00;
  std::memcpy(e.parts[1].data(), &nan16, 2);
  std::vector<float> y(32);
  EXPECT_EQ(
      c->decode(e.cspans(), TensorView::contiguous(y.data(), DType::kF32, {2, 16}, 1), 0, 2).code(),
      ErrorCode::kBadEncodedData);
}

TEST(Codec, ApiMisuseIsReported) {
  const auto c = tq(64, 4);
  std::vector<float> x(64 * 4, 1.0f);
  const TensorView in = TensorView::contiguous(x.data(), DType::kF32, {4, 64}, 1);
  Encoded e = alloc(*c, 4);
  EXPECT_EQ(c->encode(in, 3, 2, e.spans()).code(), ErrorCode::kInvalidArgument);  // past the end
  Encoded small = alloc(*c, 3);
  EXPECT_EQ(c->encode(in, 0, 4, small.spans()).code(), ErrorCode::kBufferTooSmall);
  const TensorView wrong_dim = TensorView::contiguous(x.data(), DType::kF32, {8, 32}, 1);
  EXPECT_EQ(c->encode(wrong_dim, 0, 1, e.spans()).code(), ErrorCode::kInvalidArgument);
  CodecConfig cfg;
  cfg.bits = 9;
  EXPECT_EQ(make_codec(cfg, 64).status().code(), ErrorCode::kInvalidArgument);
  cfg.id = CodecId::kUnknown;
  EXPECT_EQ(make_codec(cfg, 64).status().code(), ErrorCode::kUnsupportedCodec);
  EXPECT_EQ(make_codec(CodecConfig{}, 0).status().code(), ErrorCode::kInvalidArgument);
}

// ---------- baselines ----------

TEST(BlockAbsmax, ErrorIsWithinHalfAStep) {
  for (CodecId id : {CodecId::kBlockAbsmaxInt8, CodecId::kBlockAbsmax4}) {
    CodecConfig cfg;
    cfg.id = id;
    cfg.bits = id == CodecId::kBlockAbsmaxInt8 ? 8 : 4;
    for (std::uint32_t dim : {1u, 31u, 32u, 33u, 64u, 100u, 1280u}) {
      auto c = std::move(make_codec(cfg, dim)).value();
      const std::size_t n = 20;
      Gauss g(dim);
      std::vector<float> x(n * dim);
      for (auto& v : x) v = static_cast<float>(g.next());
      const auto y = round_trip(*c, x, n);
      const int block = cfg.bits == 8 ? 64 : 32;
      const float qmax = cfg.bits == 8 ? 127.0f : 7.0f;
      for (std::size_t v = 0; v < n; ++v) {
        for (std::uint32_t b0 = 0; b0 < dim; b0 += block) {
          float amax = 0;
          for (std::uint32_t i = b0; i < std::min(dim, b0 + block); ++i)
            amax = std::max(amax, std::abs(x[v * dim + i]));
          const float step = amax / qmax;
          for (std::uint32_t i = b0; i < std::min(dim, b0 + block); ++i) {
            ASSERT_LE(std::abs(x[v * dim + i] - y[v * dim + i]), step * 0.5f * 1.002f + 1e-7f)
                << codec_name(id) << " dim=" << dim;
          }
        }
      }
    }
  }
  CodecConfig cfg;
  cfg.id = CodecId::kBlockAbsmax4;
  cfg.bits = 4;
  EXPECT_NEAR(std::move(make_codec(cfg, 1280)).value()->bits_per_value(), 4.5, 1e-9);
}

TEST(BlockAbsmax, NonFiniteValuesAreRefusedWhereverTheyAre) {
  // std::max(amax, |NaN|) keeps amax, so a NaN once slipped through and was stored as 0.
  for (CodecId id : {CodecId::kBlockAbsmaxInt8, CodecId::kBlockAbsmax4}) {
    CodecConfig cfg;
    cfg.id = id;
    cfg.bits = id == CodecId::kBlockAbsmaxInt8 ? 8 : 4;
    auto c = std::move(make_codec(cfg, 100)).value();
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      for (std::size_t at : {0u, 1u, 63u, 64u, 99u, 150u}) {
        std::vector<float> x(200, 0.25f);
        x[at] = bad;
        Encoded e = alloc(*c, 2);
        EXPECT_EQ(c->encode(TensorView::contiguous(x.data(), DType::kF32, {2, 100}, 1), 0, 2,
                            e.spans())
                      .code(),
                  ErrorCode::kNonFiniteInput)
            << codec_name(id) << " value " << bad << " at " << at;
      }
    }
  }
}

TEST(Raw, F16IsExactAndBf16Rounds) {
  CodecConfig cfg;
  cfg.id = CodecId::kRaw;
  cfg.raw_dtype = DType::kF16;
  auto c = std::move(make_codec(cfg, 10)).value();
  std::vector<float> x(10);
  for (int i = 0; i < 10; ++i) x[i] = f16_to_f32(f32_to_f16(0.1f * static_cast<float>(i) - 0.3f));
  EXPECT_EQ(round_trip(*c, x, 1), x);
  EXPECT_EQ(c->bits_per_value(), 16.0);
  std::vector<float> big(10, 70000.0f);
  Encoded e = alloc(*c, 1);
  EXPECT_EQ(c->encode(TensorView::contiguous(big.data(), DType::kF32, {1, 10}, 1), 0, 1, e.spans())
                .code(),
            ErrorCode::kValueOutOfRange);
  cfg.raw_dtype = DType::kBF16;
  auto b = std::move(make_codec(cfg, 10)).value();
  const auto y = round_trip(*b, x, 1);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(y[i], x[i], std::abs(x[i]) / 256 + 1e-9);
}

// Golden bytes of a small case: a change here is a change of the codec's wire format.
TEST(TurboQuantMse, GoldenBytesOfASmallCase) {
  std::vector<float> x(2 * 7);
  for (int i = 0; i < 14; ++i) x[i] = std::sin(0.7f * static_cast<float>(i)) * 3.0f;
  const auto c = tq(7, 3, 42);
  Encoded e = alloc(*c, 2);
  ASSERT_TRUE(c->encode(TensorView::contiguous(x.data(), DType::kF32, {2, 7}, 1), 0, 2, e.spans()));
  std::string hex;
  for (const auto& p : e.parts) {
    for (std::byte b : p) {
      char buf[3];
      std::snprintf(buf, sizeof buf, "%02x", std::to_integer<unsigned>(b));
      hex += buf;
    }
    hex += "|";
  }
  EXPECT_EQ(hex, "440b0eed3e1c|6144d23d3b410544d743a93b|");
}

}  // namespace
}  // namespace agp::codec

namespace agp::codec {
namespace {

TEST(Lossless, ZstdRoundTripAndCorruptionIsCaught) {
  std::vector<std::byte> in(5000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::byte>((i * i) % 7);
  std::vector<std::byte> packed(zstd_bound(in.size()));
  auto n = zstd_compress(in, 3, packed);
  ASSERT_TRUE(n) << n.status().to_string();
  EXPECT_LT(*n, in.size() / 4);
  packed.resize(*n);
  std::vector<std::byte> out(in.size());
  ASSERT_TRUE(zstd_decompress(packed, out));
  EXPECT_EQ(out, in);
  std::vector<std::byte> wrong_size(in.size() + 1);
  EXPECT_EQ(zstd_decompress(packed, wrong_size).code(), ErrorCode::kBadEncodedData);
  auto bad = packed;
  bad[0] = std::byte{0};  // breaks the magic number
  EXPECT_EQ(zstd_decompress(bad, out).code(), ErrorCode::kBadEncodedData);
  // One frame and nothing after it: not a skippable frame, not a second frame.
  auto skippable = packed;
  for (int b : {0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00}) {
    skippable.push_back(static_cast<std::byte>(b));
  }
  EXPECT_EQ(zstd_decompress(skippable, out).code(), ErrorCode::kBadEncodedData);
  auto twice = packed;
  twice.insert(twice.end(), packed.begin(), packed.end());
  std::vector<std::byte> doubled(2 * in.size());
  EXPECT_EQ(zstd_decompress(twice, doubled).code(), ErrorCode::kBadEncodedData);
  std::vector<std::byte> small(10);
  EXPECT_EQ(zstd_compress(in, 3, small).status().code(), ErrorCode::kBufferTooSmall);
  std::vector<std::byte> roomy(zstd_bound(in.size()));
  EXPECT_EQ(zstd_compress(in, 99, roomy).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace agp::codec

namespace agp::codec {
namespace {

TEST(TurboQuantProd, InnerProductsAreUnbiasedWhereMseShrinksThem) {
  const std::uint32_t dim = 256;
  const std::size_t n = 1500;
  const auto x = unit_vectors(n, dim, 77);
  CodecConfig cfg;
  cfg.id = CodecId::kTurboQuantProd;
  cfg.bits = 3;  // 2-bit MSE stage + 1-bit sketch
  auto prod = std::move(make_codec(cfg, dim)).value();
  EXPECT_EQ(prod->parts().size(), 4u);
  EXPECT_EQ(prod->parts()[2].kind, SectionKind::kSketch);
  const auto y_prod = round_trip(*prod, x, n);
  const auto y_mse = round_trip(*tq(dim, 2), x, n);
  double ip_prod = 0, ip_mse = 0;
  for (std::size_t v = 0; v < n; ++v) {
    for (std::uint32_t j = 0; j < dim; ++j) {
      ip_prod += static_cast<double>(x[v * dim + j]) * y_prod[v * dim + j];
      ip_mse += static_cast<double>(x[v * dim + j]) * y_mse[v * dim + j];
    }
  }
  ip_prod /= static_cast<double>(n);
  ip_mse /= static_cast<double>(n);
  // <x, x> = 1 for unit vectors: the MSE stage shrinks it by its error (about 0.117 at 2 bits).
  EXPECT_LT(ip_mse, 0.9);
  EXPECT_NEAR(ip_prod, 1.0, 0.006);
  EXPECT_EQ(make_codec(CodecConfig{CodecId::kTurboQuantProd, 1}, dim).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace agp::codec
