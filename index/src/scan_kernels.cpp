// Highway implementations of scan_kernels.hpp, compiled once per target (foreach_target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "scan_kernels.cpp"
#include "scan_kernels.hpp"

#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <bit>
#include <cstring>

#ifndef AGP_INDEX_SCAN_KERNELS_ONCE
#define AGP_INDEX_SCAN_KERNELS_ONCE
namespace agp::index {
namespace {
// D over bytes [begin, end) of one plane, one byte at a time (reference and SIMD tails).
inline std::uint32_t bytes_distance(const std::uint8_t* x, const std::uint8_t* query,
                                    std::size_t plane, std::size_t begin, std::size_t end) {
  std::uint32_t d = 0;
  for (std::size_t o = begin; o < end; ++o) {
    for (int j = 0; j < 4; ++j)
      d += static_cast<std::uint32_t>(std::popcount(
               static_cast<unsigned>(x[o] ^ query[static_cast<std::size_t>(j) * plane + o])))
           << j;
  }
  return d;
}
// sign_estimates for vectors [begin, m), one at a time (reference and SIMD tails).
inline void estimates_from(std::size_t begin, const std::uint32_t* dist, const float* norms,
                           std::size_t blocks, std::size_t m, const float* weight,
                           const float* bias, float* est) {
  for (std::size_t i = begin; i < m; ++i) {
    float total = 0;
    for (std::size_t b = 0; b < blocks; ++b) {
      total += (norms[i * blocks + b] * weight[b]) *
               (bias[b] - static_cast<float>(static_cast<std::int32_t>(dist[b * m + i])));
    }
    est[i] = total;
  }
}
}  // namespace
}  // namespace agp::index
#endif

HWY_BEFORE_NAMESPACE();
namespace agp::index::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D8 = hn::CappedTag<std::uint8_t, 32>;  // 256 dimensions per step at most
using D64 = hn::Repartition<std::uint64_t, D8>;
using V8 = hn::Vec<D8>;

// The weighted counts of one step's bytes, each at most 8 * 15 = 120.
HWY_INLINE V8 Weighted(V8 v, V8 q0, V8 q1, V8 q2, V8 q3) {
  auto s = hn::PopulationCount(hn::Xor(v, q3));
  s = hn::Add(hn::Add(s, s), hn::PopulationCount(hn::Xor(v, q2)));
  s = hn::Add(hn::Add(s, s), hn::PopulationCount(hn::Xor(v, q1)));
  return hn::Add(hn::Add(s, s), hn::PopulationCount(hn::Xor(v, q0)));
}

HWY_INLINE std::uint32_t Total(V8 s) {
  const D64 d64;
  return static_cast<std::uint32_t>(hn::GetLane(hn::SumOfLanes(d64, hn::SumsOf8(s))));
}

// Blocks of one or two steps each (256 or 512 dimensions: 768 = 512 + 256, 512, 256), every
// vector in one pass: its bytes are read once, the query's from the first level of cache.
void ShortBlocks(const std::uint8_t* x, std::size_t plane, std::size_t count,
                 const std::uint8_t* query, const ByteRange* blocks, std::size_t nblocks,
                 std::uint32_t* out) {
  const D8 d8;
  const std::size_t n = hn::Lanes(d8);
  const std::uint8_t* q1 = query + plane;
  const std::uint8_t* q2 = query + 2 * plane;
  const std::uint8_t* q3 = query + 3 * plane;
  for (std::size_t i = 0; i < count; ++i, x += plane) {
    __builtin_prefetch(x + 16 * plane);
    for (std::size_t b = 0; b < nblocks; ++b) {
      const std::size_t o = blocks[b].begin;
      V8 s = Weighted(hn::LoadU(d8, x + o), hn::LoadU(d8, query + o), hn::LoadU(d8, q1 + o),
                      hn::LoadU(d8, q2 + o), hn::LoadU(d8, q3 + o));
      // Two steps' counts still fit a byte (240) before they are widened.
      if (blocks[b].end - o == 2 * n) {
        s = hn::Add(s, Weighted(hn::LoadU(d8, x + o + n), hn::LoadU(d8, query + o + n),
                                hn::LoadU(d8, q1 + o + n), hn::LoadU(d8, q2 + o + n),
                                hn::LoadU(d8, q3 + o + n)));
      }
      out[b * count + i] = Total(s);
    }
  }
}

void AnyBlock(const std::uint8_t* x, std::size_t plane, std::size_t count,
              const std::uint8_t* query, std::size_t len, std::uint32_t* out) {
  const D8 d8;
  const D64 d64;
  const std::size_t n = hn::Lanes(d8);
  for (std::size_t i = 0; i < count; ++i, x += plane) {
    auto acc = hn::Zero(d64);
    std::size_t o = 0;
    for (; o + n <= len; o += n) {
      const V8 s =
          Weighted(hn::LoadU(d8, x + o), hn::LoadU(d8, query + o), hn::LoadU(d8, query + plane + o),
                   hn::LoadU(d8, query + 2 * plane + o), hn::LoadU(d8, query + 3 * plane + o));
      acc = hn::Add(acc, hn::SumsOf8(s));
    }
    out[i] = static_cast<std::uint32_t>(hn::GetLane(hn::SumOfLanes(d64, acc))) +
             bytes_distance(x, query, plane, o, len);
  }
}

void SignDistances(const std::uint8_t* signs, std::size_t plane, std::size_t count,
                   const std::uint8_t* query, const ByteRange* blocks, std::size_t nblocks,
                   std::uint32_t* out) {
  const std::size_t n = hn::Lanes(D8());
  bool short_blocks = true;
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::size_t len = blocks[b].end - blocks[b].begin;
    short_blocks = short_blocks && (len == n || len == 2 * n);
  }
  if (short_blocks) {
    ShortBlocks(signs, plane, count, query, blocks, nblocks, out);
    return;
  }
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::size_t begin = blocks[b].begin;
    AnyBlock(signs + begin, plane, count, query + begin, blocks[b].end - begin, out + b * count);
  }
}

void SignEstimates(const std::uint32_t* dist, const float* norms, std::size_t blocks, std::size_t m,
                   const float* weight, const float* bias, float* est) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const std::size_t n = hn::Lanes(df);
  std::size_t i = 0;
  if (blocks == 1 || blocks == 2) {
    for (; i + n <= m; i += n) {
      auto total = hn::Zero(df);
      hn::Vec<decltype(df)> norm[2];
      if (blocks == 1) {
        norm[0] = hn::LoadU(df, norms + i);
      } else {
        hn::LoadInterleaved2(df, norms + 2 * i, norm[0], norm[1]);
      }
      for (std::size_t b = 0; b < blocks; ++b) {
        const auto d = hn::ConvertTo(
            df, hn::BitCast(di, hn::LoadU(hn::RebindToUnsigned<decltype(df)>(), dist + b * m + i)));
        total = hn::Add(total, hn::Mul(hn::Mul(norm[b], hn::Set(df, weight[b])),
                                       hn::Sub(hn::Set(df, bias[b]), d)));
      }
      hn::StoreU(total, df, est + i);
    }
  }
  estimates_from(i, dist, norms, blocks, m, weight, bias, est);
}

float CodeDot(const std::uint8_t* idx, const float* rotated, std::size_t m,
              const float* centroids) {
#if HWY_TARGET == HWY_SCALAR  // no 128-bit vectors: the same sums, one at a time
  return code_dot_reference(idx, rotated, m, centroids);
#else
  const hn::Full128<std::uint8_t> d8;
  const hn::Full128<std::uint16_t> d16;
  const hn::Full128<std::uint32_t> d32;
  const hn::Full128<float> df;
  // Byte j of every centroid: four 16-entry byte tables, looked up by the codes themselves.
  alignas(16) std::uint8_t bytes[4][16];
  for (int c = 0; c < 16; ++c) {
    std::uint32_t u;
    std::memcpy(&u, centroids + c, 4);
    for (int j = 0; j < 4; ++j) bytes[j][c] = static_cast<std::uint8_t>(u >> (8 * j));
  }
  const auto t0 = hn::Load(d8, bytes[0]), t1 = hn::Load(d8, bytes[1]);
  const auto t2 = hn::Load(d8, bytes[2]), t3 = hn::Load(d8, bytes[3]);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  std::size_t k = 0;
  for (; k + 16 <= m; k += 16) {
    const auto c = hn::LoadU(d8, idx + k);
    const auto b0 = hn::TableLookupBytes(t0, c), b1 = hn::TableLookupBytes(t1, c);
    const auto b2 = hn::TableLookupBytes(t2, c), b3 = hn::TableLookupBytes(t3, c);
    const auto lo01 = hn::ZipLower(d16, b0, b1), hi01 = hn::ZipUpper(d16, b0, b1);
    const auto lo23 = hn::ZipLower(d16, b2, b3), hi23 = hn::ZipUpper(d16, b2, b3);
    const auto f0 = hn::BitCast(df, hn::ZipLower(d32, lo01, lo23));
    const auto f1 = hn::BitCast(df, hn::ZipUpper(d32, lo01, lo23));
    const auto f2 = hn::BitCast(df, hn::ZipLower(d32, hi01, hi23));
    const auto f3 = hn::BitCast(df, hn::ZipUpper(d32, hi01, hi23));
    a0 = hn::Add(a0, hn::Mul(f0, hn::LoadU(df, rotated + k)));
    a1 = hn::Add(a1, hn::Mul(f1, hn::LoadU(df, rotated + k + 4)));
    a2 = hn::Add(a2, hn::Mul(f2, hn::LoadU(df, rotated + k + 8)));
    a3 = hn::Add(a3, hn::Mul(f3, hn::LoadU(df, rotated + k + 12)));
  }
  alignas(16) float lane[4];
  hn::Store(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), df, lane);
  float sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
  for (; k < m; ++k) sum += rotated[k] * centroids[idx[k]];
  return sum;
#endif
}

}  // namespace agp::index::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "simd_level.hpp"

namespace agp::index {

HWY_EXPORT(SignDistances);
HWY_EXPORT(SignEstimates);
HWY_EXPORT(CodeDot);

void sign_estimates(const std::uint32_t* dist, const float* norms, std::size_t blocks,
                    std::size_t m, const float* weight, const float* bias, float* est) {
  if (codec::use_reference_kernels()) {
    estimates_from(0, dist, norms, blocks, m, weight, bias, est);
    return;
  }
  HWY_DYNAMIC_DISPATCH(SignEstimates)(dist, norms, blocks, m, weight, bias, est);
}

float code_dot(const std::uint8_t* idx, const float* rotated, std::size_t m,
               const float* centroids) {
  if (codec::use_reference_kernels()) return code_dot_reference(idx, rotated, m, centroids);
  return HWY_DYNAMIC_DISPATCH(CodeDot)(idx, rotated, m, centroids);
}

float code_dot_reference(const std::uint8_t* idx, const float* rotated, std::size_t m,
                         const float* centroids) {
  float acc[4][4] = {};
  std::size_t k = 0;
  for (; k + 16 <= m; k += 16) {
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 4; ++l) {
        const std::size_t at = k + 4 * static_cast<std::size_t>(j) + static_cast<std::size_t>(l);
        acc[j][l] += centroids[idx[at]] * rotated[at];
      }
    }
  }
  float lane[4];
  for (int l = 0; l < 4; ++l) lane[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
  float sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
  for (; k < m; ++k) sum += rotated[k] * centroids[idx[k]];
  return sum;
}

void sign_distances(const std::uint8_t* signs, std::size_t plane, std::size_t count,
                    const std::uint8_t* query, std::span<const ByteRange> blocks,
                    std::uint32_t* out) {
  if (codec::use_reference_kernels()) {
    sign_distances_reference(signs, plane, count, query, blocks, out);
    return;
  }
  HWY_DYNAMIC_DISPATCH(SignDistances)
  (signs, plane, count, query, blocks.data(), blocks.size(), out);
}

void sign_distances_reference(const std::uint8_t* signs, std::size_t plane, std::size_t count,
                              const std::uint8_t* query, std::span<const ByteRange> blocks,
                              std::uint32_t* out) {
  for (std::size_t i = 0; i < count; ++i) {
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      out[b * count + i] =
          bytes_distance(signs + i * plane, query, plane, blocks[b].begin, blocks[b].end);
    }
  }
}

}  // namespace agp::index
#endif
