// Highway implementations of simd_kernels.hpp, compiled once per target (foreach_target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_kernels.cpp"
#include "simd_kernels.hpp"

#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstring>

#include "agp/codec/dtype.hpp"
#include "bitpack.hpp"

HWY_BEFORE_NAMESPACE();
namespace agp::codec::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The fused passes call these lambdas for every row; they must inline into the butterflies.
#define AGP_FORCE_INLINE_LAMBDA __attribute__((always_inline)) HWY_ATTR

using D = hn::CappedTag<float, kTileLanes>;
constexpr std::size_t K = kTileLanes;

template <class V>
HWY_INLINE void Butterfly(V& a, V& b) {
  const V t = a;
  a = hn::Add(t, b);
  b = hn::Sub(t, b);
}

// One pass of the Walsh-Hadamard transform over the m rows of a lane tile: stages h, 2h, 4h
// (kRadix 8) or stage h (kRadix 2), rows held in registers. load(row, chunk) supplies the input
// and store(row, chunk, v) takes the output, so the first and last passes can fuse the steps
// around the transform. Every butterfly is the same a+b, a-b as the stage-by-stage reference.
template <int kRadix, class Load, class Store>
HWY_INLINE void Pass(std::size_t m, std::size_t h, const Load& load, const Store& store) {
  const D d;
  const std::size_t n = hn::Lanes(d);
  for (std::size_t group = 0; group < m; group += kRadix * h) {
    for (std::size_t i = group; i < group + h; ++i) {
      for (std::size_t c = 0; c < K; c += n) {
        if constexpr (kRadix == 8) {
          auto v0 = load(i, c), v1 = load(i + h, c), v2 = load(i + 2 * h, c),
               v3 = load(i + 3 * h, c), v4 = load(i + 4 * h, c), v5 = load(i + 5 * h, c),
               v6 = load(i + 6 * h, c), v7 = load(i + 7 * h, c);
          Butterfly(v0, v1), Butterfly(v2, v3), Butterfly(v4, v5), Butterfly(v6, v7);
          Butterfly(v0, v2), Butterfly(v1, v3), Butterfly(v4, v6), Butterfly(v5, v7);
          Butterfly(v0, v4), Butterfly(v1, v5), Butterfly(v2, v6), Butterfly(v3, v7);
          store(i, c, v0), store(i + h, c, v1), store(i + 2 * h, c, v2), store(i + 3 * h, c, v3);
          store(i + 4 * h, c, v4), store(i + 5 * h, c, v5), store(i + 6 * h, c, v6);
          store(i + 7 * h, c, v7);
        } else if constexpr (kRadix == 2) {
          auto v0 = load(i, c), v1 = load(i + h, c);
          Butterfly(v0, v1);
          store(i, c, v0), store(i + h, c, v1);
        } else {
          store(i, c, load(i, c));  // m == 1: no stage, just the fused steps
        }
      }
    }
  }
}

// The whole transform of an m-row block in passes of radix 8 (then 2): first_load feeds the first
// pass and last_store takes the last one; passes in between go through the tile x.
template <class First, class Last>
HWY_INLINE void FwhtFused(float* x, std::size_t m, const First& first_load,
                          const Last& last_store) {
  const D d;
  const auto tile_load = [&](std::size_t r, std::size_t c)
                             AGP_FORCE_INLINE_LAMBDA { return hn::Load(d, x + r * K + c); };
  const auto tile_store = [&](std::size_t r, std::size_t c, hn::Vec<D> v)
                              AGP_FORCE_INLINE_LAMBDA { hn::Store(v, d, x + r * K + c); };
  if (m == 1) {
    Pass<1>(m, 1, first_load, last_store);
    return;
  }
  std::size_t h = 1;
  bool first = true;
  while (h < m) {
    const bool r8 = m / h >= 8;
    const std::size_t next = h * (r8 ? 8 : 2);
    const bool last = next >= m;
    if (r8) {
      if (first && last)
        Pass<8>(m, h, first_load, last_store);
      else if (first)
        Pass<8>(m, h, first_load, tile_store);
      else if (last)
        Pass<8>(m, h, tile_load, last_store);
      else
        Pass<8>(m, h, tile_load, tile_store);
    } else {
      if (first && last)
        Pass<2>(m, h, first_load, last_store);
      else if (first)
        Pass<2>(m, h, first_load, tile_store);
      else if (last)
        Pass<2>(m, h, tile_load, last_store);
      else
        Pass<2>(m, h, tile_load, tile_store);
    }
    first = false;
    h = next;
  }
}

// table[idx] for a table of up to 16 floats, one lookup per Lanes(d)-entry chunk.
template <class V, class VI>
HWY_INLINE V Lookup16(const float* table, std::size_t entries, VI idx) {
  const D d;
  const hn::RebindToSigned<D> di;
  const std::size_t n = hn::Lanes(d);
  if (entries <= n) return hn::TableLookupLanes(hn::LoadU(d, table), hn::IndicesFromVec(d, idx));
  const auto low = hn::And(idx, hn::Set(di, static_cast<int32_t>(n - 1)));
  V out = hn::TableLookupLanes(hn::LoadU(d, table), hn::IndicesFromVec(d, low));
  for (std::size_t c = n; c < entries; c += n) {
    const auto chunk = hn::TableLookupLanes(hn::LoadU(d, table + c), hn::IndicesFromVec(d, low));
    const auto in_chunk = hn::RebindMask(d, hn::Gt(idx, hn::Set(di, static_cast<int32_t>(c) - 1)));
    out = hn::IfThenElse(in_chunk, chunk, out);
  }
  return out;
}

// Highway narrows f32 to f16 in software on targets without F16C/NEON, not always to nearest even;
// the codec rounds to nearest even on every level, so those targets use the scalar conversion.
constexpr bool kSoftF16 = HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128 ||
                          HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3;

void F16ToF32N(const std::uint16_t* src, std::size_t count, float* dst) {
  const D d;
  const hn::Rebind<hwy::float16_t, D> d16;
  const std::size_t n = hn::Lanes(d);
  const auto* in = reinterpret_cast<const hwy::float16_t*>(src);
  std::size_t i = 0;
  for (; i + n <= count; i += n) hn::StoreU(hn::PromoteTo(d, hn::LoadU(d16, in + i)), d, dst + i);
  for (; i < count; ++i) dst[i] = agp::f16_to_f32(src[i]);
}

void F32ToF16N(const float* src, std::size_t count, std::uint16_t* dst) {
  if constexpr (kSoftF16) {
    for (std::size_t i = 0; i < count; ++i) dst[i] = agp::f32_to_f16(src[i]);
    return;
  }
  const D d;
  const hn::Rebind<hwy::float16_t, D> d16;
  const std::size_t n = hn::Lanes(d);
  auto* out = reinterpret_cast<hwy::float16_t*>(dst);
  std::size_t i = 0;
  for (; i + n <= count; i += n) hn::StoreU(hn::DemoteTo(d16, hn::LoadU(d, src + i)), d16, out + i);
  for (; i < count; ++i) dst[i] = agp::f32_to_f16(src[i]);
}

// Four rounds of "interleave row i with row i + 8" rotate each byte's (row, column) address by one
// bit; after four the rows and columns have swapped.
void Transpose16x16(const std::uint8_t* src, std::size_t src_stride, std::uint8_t* dst,
                    std::size_t dst_stride) {
#if HWY_TARGET == HWY_SCALAR
  for (std::size_t r = 0; r < 16; ++r) {
    for (std::size_t c = 0; c < 16; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
  }
#else
  const hn::Full128<std::uint8_t> d8;
  using V = hn::Vec<decltype(d8)>;
  V r[16];
  for (std::size_t i = 0; i < 16; ++i) r[i] = hn::LoadU(d8, src + i * src_stride);
  for (int round = 0; round < 4; ++round) {
    V n[16];
    for (std::size_t i = 0; i < 8; ++i) {
      n[2 * i] = hn::InterleaveLower(d8, r[i], r[i + 8]);
      n[2 * i + 1] = hn::InterleaveUpper(d8, r[i], r[i + 8]);
    }
    for (std::size_t i = 0; i < 16; ++i) r[i] = n[i];
  }
  for (std::size_t i = 0; i < 16; ++i) hn::StoreU(r[i], d8, dst + i * dst_stride);
#endif
}

// Packs 16 lanes' indices into code rows P[k][t] (one packed byte per lane) for bits 1, 2, 4, 8,
// where every code byte holds whole indices.
void PackRows(const std::uint8_t* idx, std::size_t dim, int bits, std::uint8_t* rows) {
  const std::size_t per = 8 / static_cast<std::size_t>(bits);
  const std::size_t nbytes = (dim + per - 1) / per;
#if HWY_TARGET == HWY_SCALAR
  for (std::size_t k = 0; k < nbytes; ++k) {
    for (std::size_t t = 0; t < K; ++t) {
      unsigned acc = 0;
      for (std::size_t q = 0; q < per && k * per + q < dim; ++q)
        acc |= static_cast<unsigned>(idx[(k * per + q) * K + t])
               << (q * static_cast<std::size_t>(bits));
      rows[k * K + t] = static_cast<std::uint8_t>(acc);
    }
  }
#else
  const hn::Full128<std::uint8_t> d8;
  for (std::size_t k = 0; k < nbytes; ++k) {
    auto acc = hn::Zero(d8);
    for (std::size_t q = 0; q < per && k * per + q < dim; ++q) {
      const auto v = hn::LoadU(d8, idx + (k * per + q) * K);
      // Shift left by q * bits within bytes: multiply-free via repeated doubling (Add).
      auto shifted = v;
      for (std::size_t s = 0; s < q * static_cast<std::size_t>(bits); ++s)
        shifted = hn::Add(shifted, shifted);
      acc = hn::Or(acc, shifted);
    }
    hn::StoreU(acc, d8, rows + k * K);
  }
#endif
}

void UnpackRows(const std::uint8_t* rows, std::size_t dim, int bits, std::uint8_t* idx) {
  const std::size_t per = 8 / static_cast<std::size_t>(bits);
  const std::uint8_t mask = static_cast<std::uint8_t>((1u << bits) - 1);
#if HWY_TARGET == HWY_SCALAR
  for (std::size_t j = 0; j < dim; ++j) {
    const std::size_t k = j / per, q = j % per;
    for (std::size_t t = 0; t < K; ++t)
      idx[j * K + t] = static_cast<std::uint8_t>(
          (rows[k * K + t] >> (q * static_cast<std::size_t>(bits))) & mask);
  }
#else
  const hn::Full128<std::uint8_t> d8;
  const hn::Full128<std::uint16_t> d16;
  const auto vmask = hn::Set(d8, mask);
  for (std::size_t k = 0, j = 0; j < dim; ++k) {
    const auto row = hn::LoadU(d8, rows + k * K);
    for (std::size_t q = 0; q < per && j < dim; ++q, ++j) {
      // Shift as 16-bit lanes, then keep the low `bits` of each byte.
      const int sh = static_cast<int>(q) * bits;
      const auto v = sh ? hn::BitCast(d8, hn::ShiftRightSame(hn::BitCast(d16, row), sh)) : row;
      hn::StoreU(hn::And(v, vmask), d8, idx + j * K);
    }
  }
#endif
}

void PackTile(const std::uint8_t* idx, std::size_t dim, int bits, std::size_t lanes,
              std::uint8_t* out, std::size_t stride) {
  const std::size_t code_bytes = packed_bytes(dim, bits);
  HWY_ALIGN std::uint8_t block[16 * 16];
  if (bits == 1 || bits == 2 || bits == 4 || bits == 8) {
    thread_local std::vector<std::uint8_t> rows;
    rows.resize(code_bytes * K + 16 * K);
    if (bits == 8) {
      std::memcpy(rows.data(), idx, dim * K);
    } else {
      PackRows(idx, dim, bits, rows.data());
    }
    std::size_t k = 0;
    for (; k + 16 <= code_bytes; k += 16) {
      Transpose16x16(rows.data() + k * K, K, block, 16);
      for (std::size_t t = 0; t < lanes; ++t) std::memcpy(out + t * stride + k, block + t * 16, 16);
    }
    for (; k < code_bytes; ++k) {
      for (std::size_t t = 0; t < lanes; ++t) out[t * stride + k] = rows[k * K + t];
    }
    return;
  }
  // 3, 5, 6, 7 bits: transpose to per-vector index columns, then the scalar packer.
  thread_local std::vector<std::uint8_t> cols;
  cols.resize(K * (dim + 16));
  std::size_t j = 0;
  for (; j + 16 <= dim; j += 16) Transpose16x16(idx + j * K, K, cols.data() + j, dim + 16);
  for (; j < dim; ++j) {
    for (std::size_t t = 0; t < K; ++t) cols[t * (dim + 16) + j] = idx[j * K + t];
  }
  for (std::size_t t = 0; t < lanes; ++t)
    pack_bits(cols.data() + t * (dim + 16), dim, bits, out + t * stride);
}

void UnpackTile(const std::uint8_t* in, std::size_t stride, std::size_t dim, int bits,
                std::size_t lanes, std::uint8_t* idx, bool keep_packed4) {
  const std::size_t code_bytes = packed_bytes(dim, bits);
  HWY_ALIGN std::uint8_t block[16 * 16];
  if (bits == 1 || bits == 2 || bits == 4 || bits == 8) {
    thread_local std::vector<std::uint8_t> rows;
    rows.resize(code_bytes * K + 16 * K);
    std::size_t k = 0;
    for (; k + 16 <= code_bytes; k += 16) {
      for (std::size_t t = 0; t < K; ++t) {
        if (t < lanes) {
          std::memcpy(block + t * 16, in + t * stride + k, 16);
        } else {
          std::memset(block + t * 16, 0, 16);
        }
      }
      Transpose16x16(block, 16, rows.data() + k * K, K);
    }
    for (; k < code_bytes; ++k) {
      for (std::size_t t = 0; t < K; ++t) rows[k * K + t] = t < lanes ? in[t * stride + k] : 0;
    }
    if (bits == 8 || (bits == 4 && keep_packed4)) {
      std::memcpy(idx, rows.data(), code_bytes * K);
    } else {
      UnpackRows(rows.data(), dim, bits, idx);
    }
    return;
  }
  thread_local std::vector<std::uint8_t> cols;
  cols.resize(K * (dim + 16));
  for (std::size_t t = 0; t < K; ++t) {
    std::uint8_t* col = cols.data() + t * (dim + 16);
    if (t < lanes) {
      unpack_bits(in + t * stride, dim, bits, col);
    } else {
      std::memset(col, 0, dim);
    }
  }
  std::size_t j = 0;
  for (; j + 16 <= dim; j += 16) Transpose16x16(cols.data() + j, dim + 16, idx + j * K, K);
  for (; j < dim; ++j) {
    for (std::size_t t = 0; t < K; ++t) idx[j * K + t] = cols[t * (dim + 16) + j];
  }
}

template <class V, class VI>
HWY_INLINE VI QuantizeVec(V z, const float (*tables)[16], int steps, int levels,
                          float first_boundary, std::size_t entries) {
  const D d;
  const hn::RebindToSigned<D> di;
  auto pos = hn::IfThenElseZero(hn::RebindMask(di, hn::Ge(z, hn::Set(d, first_boundary))),
                                hn::Set(di, levels / 2));
  int step = levels / 4;
  for (int t = 0; t < steps; ++t, step /= 2) {
    const auto thr = Lookup16<hn::Vec<D>>(tables[t], entries, pos);
    pos = hn::Add(pos, hn::IfThenElseZero(hn::RebindMask(di, hn::Ge(z, thr)), hn::Set(di, step)));
  }
  return pos;
}

void EncodeLoad(const void* src, bool src_f16, std::ptrdiff_t stride, std::size_t m,
                const float* signs, float* x, float* ss) {
  const D d;
  const hn::Rebind<hwy::float16_t, D> d16;
  const std::size_t n = hn::Lanes(d);
  for (std::size_t c = 0; c < K; c += n) {
    auto acc = hn::Zero(d);
    for (std::size_t j = 0; j < m; ++j) {
      const std::ptrdiff_t off =
          static_cast<std::ptrdiff_t>(j) * stride + static_cast<std::ptrdiff_t>(c);
      const auto v =
          src_f16 ? hn::PromoteTo(d, hn::LoadU(d16, static_cast<const hwy::float16_t*>(src) + off))
                  : hn::LoadU(d, static_cast<const float*>(src) + off);
      acc = hn::Add(acc, hn::Mul(v, v));
      hn::Store(hn::Mul(v, hn::Set(d, signs[j])), d, x + j * K + c);
    }
    hn::Store(acc, d, ss + c);
  }
}

void EncodeTransform(float* x, std::size_t m, const float* inv, const float* boundaries, int bits,
                     std::uint8_t* idx) {
  const D d;
  const hn::Rebind<std::uint8_t, D> d8;
  const std::size_t n = hn::Lanes(d);
  const auto tile_load = [&](std::size_t r, std::size_t c)
                             AGP_FORCE_INLINE_LAMBDA { return hn::Load(d, x + r * K + c); };
  if (bits > 4) {  // leave z in the tile for the scalar quantizer
    FwhtFused(x, m, tile_load,
              [&](std::size_t r, std::size_t c, hn::Vec<D> v) AGP_FORCE_INLINE_LAMBDA {
                hn::Store(hn::Mul(v, hn::Load(d, inv + c)), d, x + r * K + c);
              });
    return;
  }
  const int levels = 1 << bits;
  HWY_ALIGN float tables[4][16];
  int steps = 0;
  for (int step = levels / 4; step >= 1; step /= 2, ++steps) {
    for (int p = 0; p < 16; ++p) {
      const int probe = p + step - 1;
      tables[steps][p] =
          (p % (2 * step) == 0 && probe < levels - 1) ? boundaries[probe] : HUGE_VALF;
    }
  }
  const std::size_t entries =
      static_cast<std::size_t>(levels) < n ? n : static_cast<std::size_t>(levels);
  const float first_boundary = boundaries[levels / 2 - 1];
  FwhtFused(x, m, tile_load,
            [&](std::size_t r, std::size_t c, hn::Vec<D> v) AGP_FORCE_INLINE_LAMBDA {
              const auto z = hn::Mul(v, hn::Load(d, inv + c));
              const auto q = QuantizeVec<hn::Vec<D>, hn::Vec<hn::RebindToSigned<D>>>(
                  z, tables, steps, levels, first_boundary, entries);
              hn::StoreU(hn::DemoteTo(d8, q), d8, idx + r * K + c);
            });
}

void DecodeBlock(const std::uint8_t* idx, bool packed4, std::size_t m, const float* centroids,
                 int bits, const float* lane_scale, const float* signs, float* x, void* dst,
                 bool dst_f16, std::ptrdiff_t stride) {
  const D d;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<std::uint8_t, D> d8;
  const hn::Rebind<hwy::float16_t, D> d16;
  const std::size_t n = hn::Lanes(d);
  HWY_ALIGN float table[16] = {};
  const std::size_t levels = std::size_t{1} << bits;
  const bool lookup = idx != nullptr;  // otherwise x already holds the centroid values
  const bool gather = bits > 4;        // 32..256 centroids: gather from the codebook
  if (lookup && !gather) {
    for (std::size_t i = 0; i < levels; ++i) table[i] = centroids[i];
  }
  const std::size_t entries = levels < n ? n : levels;
  const auto first = [&](std::size_t r, std::size_t c) AGP_FORCE_INLINE_LAMBDA {
    if (!lookup) return hn::Load(d, x + r * K + c);
    auto i32 = hn::PromoteTo(di, hn::LoadU(d8, idx + (packed4 ? r / 2 : r) * K + c));
    if (packed4) {  // two 4-bit indices per byte: even rows in the low nibble
      i32 = (r & 1) ? hn::ShiftRight<4>(i32) : hn::And(i32, hn::Set(di, 15));
    }
    if (gather) return hn::GatherIndex(d, centroids, i32);
    return Lookup16<hn::Vec<D>>(table, entries, i32);
  };
  const auto last = [&](std::size_t r, std::size_t c, hn::Vec<D> v) AGP_FORCE_INLINE_LAMBDA {
    const auto f = hn::Mul(hn::Load(d, lane_scale + c), hn::Set(d, signs[r]));
    const auto out = hn::Mul(v, f);
    const std::ptrdiff_t off =
        static_cast<std::ptrdiff_t>(r) * stride + static_cast<std::ptrdiff_t>(c);
    if (dst_f16) {
      if constexpr (kSoftF16) {
        HWY_ALIGN float tmp[K];
        hn::Store(out, d, tmp);
        auto* o = static_cast<std::uint16_t*>(dst) + off;
        for (std::size_t i = 0; i < n; ++i) o[i] = agp::f32_to_f16(tmp[i]);
      } else {
        hn::StoreU(hn::DemoteTo(d16, out), d16, static_cast<hwy::float16_t*>(dst) + off);
      }
    } else {
      hn::StoreU(out, d, static_cast<float*>(dst) + off);
    }
  };
  FwhtFused(x, m, first, last);
}

void QuantizeLutRows(const float* z, std::size_t m, float lo, float inv_bin, int bins,
                     const std::int32_t* start, const float* boundaries, int max_steps,
                     std::uint8_t* idx) {
  const D d;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<std::uint8_t, D> d8;
  const std::size_t n = hn::Lanes(d);
  const auto vlo = hn::Set(d, lo), vinv = hn::Set(d, inv_bin);
  const auto top = hn::Set(d, static_cast<float>(bins - 1));
  for (std::size_t e = 0; e < m * K; e += n) {
    const auto v = hn::Load(d, z + e);
    // The same float operations as Codebook::quantize, then its correction steps.
    const auto pos = hn::Min(hn::Max(hn::Mul(hn::Sub(v, vlo), vinv), hn::Zero(d)), top);
    auto q = hn::GatherIndex(di, start, hn::ConvertTo(di, pos));
    for (int s = 0; s < max_steps; ++s) {
      const auto thr = hn::GatherIndex(d, boundaries, q);
      q = hn::Add(q, hn::IfThenElseZero(hn::RebindMask(di, hn::Ge(v, thr)), hn::Set(di, 1)));
    }
    hn::StoreU(hn::DemoteTo(d8, q), d8, idx + e);
  }
}

void SubtractRows(const float* x, std::size_t rows, std::size_t dim, const float* mean, float* z) {
  const hn::ScalableTag<float> d;
  const std::size_t n = hn::Lanes(d);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* in = x + r * dim;
    float* out = z + r * dim;
    std::size_t j = 0;
    for (; j + n <= dim; j += n) {
      hn::StoreU(hn::Sub(hn::LoadU(d, in + j), hn::LoadU(d, mean + j)), d, out + j);
    }
    for (; j < dim; ++j) out[j] = in[j] - mean[j];
  }
}

void QuantizeRound(const float* z, std::size_t count, float inv, std::int32_t* q) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const std::size_t n = hn::Lanes(d);
  const auto vinv = hn::Set(d, inv);
  std::size_t i = 0;
  // roundeven(z * inv): the product in f32, then the nearest integer, ties to even.
  for (; i + n <= count; i += n) hn::StoreU(hn::NearestInt(hn::Mul(hn::LoadU(d, z + i), vinv)), di, q + i);
  for (; i < count; ++i) q[i] = static_cast<std::int32_t>(std::nearbyint(z[i] * inv));
}

void F16StridedToF32(const std::uint16_t* base, std::ptrdiff_t stride, std::size_t rows,
                     std::size_t width, float* dst) {
  for (std::size_t r = 0; r < rows; ++r) F16ToF32N(base + static_cast<std::ptrdiff_t>(r) * stride, width, dst + r * width);
}

void F32ToF16Strided(const float* src, std::size_t rows, std::size_t width, std::uint16_t* base,
                     std::ptrdiff_t stride) {
  for (std::size_t r = 0; r < rows; ++r) F32ToF16N(src + r * width, width, base + static_cast<std::ptrdiff_t>(r) * stride);
}

void QuantizeSymbols(const float* z, std::size_t rows, std::size_t dim, float inv,
                     const std::int32_t* shift, std::int32_t* q, std::uint8_t* sym) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<std::uint8_t, decltype(d)> d8;
  const std::size_t n = hn::Lanes(d);
  const auto vinv = hn::Set(d, inv);
  const auto lo = hn::Set(di, -32), hi = hn::Set(di, 32), bias = hn::Set(di, 31), esc = hn::Set(di, 63);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* zr = z + r * dim;
    std::int32_t* qr = q + r * dim;
    std::uint8_t* sr = sym + r * dim;
    std::size_t j = 0;
    for (; j + n <= dim; j += n) {
      const auto qv = hn::NearestInt(hn::Mul(hn::LoadU(d, zr + j), vinv));
      hn::StoreU(qv, di, qr + j);
      const auto h = hn::Shr(qv, hn::LoadU(di, shift + j));
      const auto inside = hn::And(hn::Gt(h, lo), hn::Lt(h, hi));
      const auto s = hn::IfThenElse(inside, hn::Add(h, bias), esc);
      hn::StoreU(hn::DemoteTo(d8, s), d8, sr + j);
    }
    for (; j < dim; ++j) {
      qr[j] = static_cast<std::int32_t>(std::nearbyint(zr[j] * inv));
      const std::int32_t h = qr[j] >> shift[j];
      sr[j] = static_cast<std::uint8_t>(h >= -31 && h <= 31 ? h + 31 : 63);
    }
  }
}

float MaxAbs(const float* x, std::size_t count) {
  const hn::ScalableTag<float> d;
  const std::size_t n = hn::Lanes(d);
  // Max drops NaN on some targets, so x * 0 is summed too: NaN when any x is NaN or infinite.
  auto m = hn::Zero(d), poison = hn::Zero(d);
  std::size_t i = 0;
  for (; i + n <= count; i += n) {
    const auto v = hn::LoadU(d, x + i);
    m = hn::Max(m, hn::Abs(v));
    poison = hn::Add(poison, hn::Mul(v, hn::Zero(d)));
  }
  float out = hn::GetLane(hn::MaxOfLanes(d, m));
  float bad = hn::GetLane(hn::SumOfLanes(d, poison));
  for (; i < count; ++i) {
    out = std::max(out, std::abs(x[i]));
    bad += x[i] * 0.0f;
  }
  return std::isnan(bad) ? bad : out;
}

void DequantizeLevels(const float* level, std::size_t count, const float* mean, float step,
                      float* x) {
  const hn::ScalableTag<float> d;
  const std::size_t n = hn::Lanes(d);
  const auto vstep = hn::Set(d, step);
  std::size_t i = 0;
  // mean + step * level: a product, then a sum (no fused multiply-add).
  for (; i + n <= count; i += n) {
    hn::StoreU(hn::Add(hn::LoadU(d, mean + i), hn::Mul(vstep, hn::LoadU(d, level + i))), d, x + i);
  }
  for (; i < count; ++i) x[i] = mean[i] + step * level[i];
}

void DequantizeToF16(const float* level, std::size_t count, const float* mean, float step,
                     std::uint16_t* x) {
  if constexpr (kSoftF16) {
    for (std::size_t i = 0; i < count; ++i) x[i] = agp::f32_to_f16(mean[i] + step * level[i]);
    return;
  }
  const D d;
  const hn::Rebind<hwy::float16_t, D> d16;
  const std::size_t n = hn::Lanes(d);
  const auto vstep = hn::Set(d, step);
  auto* out = reinterpret_cast<hwy::float16_t*>(x);
  std::size_t i = 0;
  for (; i + n <= count; i += n) {
    const auto v = hn::Add(hn::LoadU(d, mean + i), hn::Mul(vstep, hn::LoadU(d, level + i)));
    hn::StoreU(hn::DemoteTo(d16, v), d16, out + i);
  }
  for (; i < count; ++i) x[i] = agp::f32_to_f16(mean[i] + step * level[i]);
}

void ShiftAddLevels(const std::int8_t* h, const std::int32_t* r, std::size_t rows, std::size_t m,
                    int k, float* out, std::size_t out_stride) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<std::int8_t, decltype(d)> d8;
  const std::size_t n = hn::Lanes(d);
  for (std::size_t q = 0; q < rows; ++q, h += m, r += m, out += out_stride) {
    std::size_t i = 0;
    for (; i + n <= m; i += n) {
      const auto hv = hn::ShiftLeftSame(hn::PromoteTo(di, hn::LoadU(d8, h + i)), k);
      hn::StoreU(hn::ConvertTo(d, hn::Add(hv, hn::LoadU(di, r + i))), d, out + i);
    }
    for (; i < m; ++i) {
      out[i] = static_cast<float>(static_cast<std::int32_t>(static_cast<std::uint32_t>(h[i]) << k) + r[i]);
    }
  }
}

void ShiftAddLevelsU8(const std::int8_t* h, const std::uint8_t* r, std::size_t rows,
                      std::size_t m, int k, float* out, std::size_t out_stride) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<std::int8_t, decltype(d)> d8;
  const hn::Rebind<std::uint8_t, decltype(d)> du8;
  const std::size_t n = hn::Lanes(d);
  for (std::size_t q = 0; q < rows; ++q, h += m, r += m, out += out_stride) {
    std::size_t i = 0;
    for (; i + n <= m; i += n) {
      const auto hv = hn::ShiftLeftSame(hn::PromoteTo(di, hn::LoadU(d8, h + i)), k);
      const auto rv = hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<decltype(di)>(), hn::LoadU(du8, r + i)));
      hn::StoreU(hn::ConvertTo(d, hn::Add(hv, rv)), d, out + i);
    }
    for (; i < m; ++i) {
      out[i] = static_cast<float>(static_cast<std::int32_t>(static_cast<std::uint32_t>(h[i]) << k) + r[i]);
    }
  }
}

void ReconLevels(const std::int8_t* h, std::size_t rows, std::size_t m, const float* recon64,
                 float* out, std::size_t out_stride) {
  const hn::ScalableTag<float> d;
  const std::size_t n = hn::Lanes(d);
#if HWY_TARGET != HWY_SCALAR
  if (n == 16) {
    // 16-lane vectors (AVX-512): the 64 points in four registers, each value picked by an
    // in-register permute and a select (gathers are slow on the x86 cores measured).
    const hn::RebindToSigned<decltype(d)> di;
    const hn::Rebind<std::int8_t, decltype(d)> d8;
    const auto t0 = hn::LoadU(d, recon64), t1 = hn::LoadU(d, recon64 + 16);
    const auto t2 = hn::LoadU(d, recon64 + 32), t3 = hn::LoadU(d, recon64 + 48);
    const auto bias = hn::Set(di, 31), low = hn::Set(di, 15);
    for (std::size_t q = 0; q < rows; ++q, h += m, out += out_stride) {
      std::size_t i = 0;
      for (; i + 16 <= m; i += 16) {
        const auto idx = hn::And(hn::Add(hn::PromoteTo(di, hn::LoadU(d8, h + i)), bias), hn::Set(di, 63));
        const auto lane = hn::IndicesFromVec(d, hn::And(idx, low));
        const auto quarter = hn::ShiftRight<4>(idx);
        auto r = hn::TableLookupLanes(t0, lane);
        r = hn::IfThenElse(hn::RebindMask(d, hn::Eq(quarter, hn::Set(di, 1))), hn::TableLookupLanes(t1, lane), r);
        r = hn::IfThenElse(hn::RebindMask(d, hn::Eq(quarter, hn::Set(di, 2))), hn::TableLookupLanes(t2, lane), r);
        r = hn::IfThenElse(hn::RebindMask(d, hn::Eq(quarter, hn::Set(di, 3))), hn::TableLookupLanes(t3, lane), r);
        hn::StoreU(r, d, out + i);
      }
      for (; i < m; ++i) out[i] = recon64[(h[i] + 31) & 63];
    }
    return;
  }
#endif
  (void)n;
  // Plain loads elsewhere: a 64-entry gather is slower than scalar loads on the x86 cores measured.
  for (std::size_t q = 0; q < rows; ++q, h += m, out += out_stride) {
    std::size_t i = 0;
    for (; i + 4 <= m; i += 4) {
      const float a = recon64[(h[i] + 31) & 63], b = recon64[(h[i + 1] + 31) & 63];
      const float c = recon64[(h[i + 2] + 31) & 63], e = recon64[(h[i + 3] + 31) & 63];
      out[i] = a, out[i + 1] = b, out[i + 2] = c, out[i + 3] = e;
    }
    for (; i < m; ++i) out[i] = recon64[(h[i] + 31) & 63];
  }
}

// Channels-first tiles of the calibrated codec, transposed 4 x 4 values at a time in 128-bit
// registers (no gathers: they are slow on some x86 cores, and emulated on NEON).
#if HWY_TARGET != HWY_SCALAR
using D4 = hn::Full128<float>;
template <class V>
HWY_INLINE void Transpose4x4(V& r0, V& r1, V& r2, V& r3) {
  const D4 d;
  const V t0 = hn::InterleaveLower(d, r0, r1), t1 = hn::InterleaveLower(d, r2, r3);
  const V t2 = hn::InterleaveUpper(d, r0, r1), t3 = hn::InterleaveUpper(d, r2, r3);
  r0 = hn::ConcatLowerLower(d, t1, t0);
  r1 = hn::ConcatUpperUpper(d, t1, t0);
  r2 = hn::ConcatLowerLower(d, t3, t2);
  r3 = hn::ConcatUpperUpper(d, t3, t2);
}
#endif

// B = A^T, A of `rows` x `cols` values (A[r][c] at src[r * src_stride + c], f16 or f32), B[c][r]
// written as f32 to dst[c * dst_stride + r].
void TransposeToF32(const void* src, bool src_f16, std::size_t rows, std::size_t cols,
                    std::ptrdiff_t src_stride, float* dst, std::size_t dst_stride) {
  auto at = [&](std::size_t r, std::size_t c) {
    return static_cast<std::ptrdiff_t>(r) * src_stride + static_cast<std::ptrdiff_t>(c);
  };
  std::size_t r0 = 0;
#if HWY_TARGET != HWY_SCALAR
  const D4 d;
  const hn::Rebind<hwy::float16_t, D4> d16;
  const auto* s16 = static_cast<const hwy::float16_t*>(src);
  const auto* s32 = static_cast<const float*>(src);
  auto load = [&](std::size_t r, std::size_t c) HWY_ATTR {
    return src_f16 ? hn::PromoteTo(d, hn::LoadU(d16, s16 + at(r, c))) : hn::LoadU(d, s32 + at(r, c));
  };
  for (; r0 + 4 <= rows; r0 += 4) {
    std::size_t c0 = 0;
    for (; c0 + 4 <= cols; c0 += 4) {
      auto v0 = load(r0, c0), v1 = load(r0 + 1, c0), v2 = load(r0 + 2, c0), v3 = load(r0 + 3, c0);
      Transpose4x4(v0, v1, v2, v3);
      hn::StoreU(v0, d, dst + c0 * dst_stride + r0);
      hn::StoreU(v1, d, dst + (c0 + 1) * dst_stride + r0);
      hn::StoreU(v2, d, dst + (c0 + 2) * dst_stride + r0);
      hn::StoreU(v3, d, dst + (c0 + 3) * dst_stride + r0);
    }
    for (; c0 < cols; ++c0) {
      for (std::size_t r = r0; r < r0 + 4; ++r) {
        dst[c0 * dst_stride + r] = src_f16 ? agp::f16_to_f32(static_cast<const std::uint16_t*>(src)[at(r, c0)])
                                           : static_cast<const float*>(src)[at(r, c0)];
      }
    }
  }
#endif
  for (; r0 < rows; ++r0) {
    for (std::size_t c = 0; c < cols; ++c) {
      dst[c * dst_stride + r0] = src_f16 ? agp::f16_to_f32(static_cast<const std::uint16_t*>(src)[at(r0, c)])
                                         : static_cast<const float*>(src)[at(r0, c)];
    }
  }
}

// B = A^T, A f32 (A[r][c] at src[r * src_stride + c]), B[c][r] written to dst[c * dst_stride + r]
// as f16 (nearest even) or f32.
void TransposeFromF32(const float* src, std::size_t rows, std::size_t cols, std::size_t src_stride,
                      void* dst, bool dst_f16, std::ptrdiff_t dst_stride) {
  auto* o16 = static_cast<std::uint16_t*>(dst);
  auto* o32 = static_cast<float*>(dst);
  auto at = [&](std::size_t c, std::size_t r) {
    return static_cast<std::ptrdiff_t>(c) * dst_stride + static_cast<std::ptrdiff_t>(r);
  };
  auto put = [&](std::size_t c, std::size_t r, float x) {
    if (dst_f16) {
      o16[at(c, r)] = agp::f32_to_f16(x);
    } else {
      o32[at(c, r)] = x;
    }
  };
  std::size_t r0 = 0;
#if HWY_TARGET != HWY_SCALAR
  const D4 d;
  const hn::Rebind<hwy::float16_t, D4> d16;
  auto store = [&](std::size_t c, std::size_t r, hn::Vec<D4> x) HWY_ATTR {
    if (!dst_f16) {
      hn::StoreU(x, d, o32 + at(c, r));
    } else if constexpr (kSoftF16) {
      HWY_ALIGN float v[4];
      hn::Store(x, d, v);
      for (std::size_t i = 0; i < 4; ++i) o16[at(c, r + i)] = agp::f32_to_f16(v[i]);
    } else {
      hn::StoreU(hn::DemoteTo(d16, x), d16, reinterpret_cast<hwy::float16_t*>(o16) + at(c, r));
    }
  };
  for (; r0 + 4 <= rows; r0 += 4) {
    std::size_t c0 = 0;
    for (; c0 + 4 <= cols; c0 += 4) {
      auto v0 = hn::LoadU(d, src + r0 * src_stride + c0), v1 = hn::LoadU(d, src + (r0 + 1) * src_stride + c0);
      auto v2 = hn::LoadU(d, src + (r0 + 2) * src_stride + c0), v3 = hn::LoadU(d, src + (r0 + 3) * src_stride + c0);
      Transpose4x4(v0, v1, v2, v3);
      store(c0, r0, v0);
      store(c0 + 1, r0, v1);
      store(c0 + 2, r0, v2);
      store(c0 + 3, r0, v3);
    }
    for (; c0 < cols; ++c0) {
      for (std::size_t r = r0; r < r0 + 4; ++r) put(c0, r, src[r * src_stride + c0]);
    }
  }
#endif
  for (; r0 < rows; ++r0) {
    for (std::size_t c = 0; c < cols; ++c) put(c, r0, src[r0 * src_stride + c]);
  }
}

void RowsToLanes(const float* level, std::size_t dim, const float* mean, float step, void* base,
                 bool dst_f16, std::ptrdiff_t stride) {
  std::size_t j0 = 0;
  auto* o16 = static_cast<std::uint16_t*>(base);
  auto* o32 = static_cast<float*>(base);
#if HWY_TARGET != HWY_SCALAR
  const D4 d;
  const hn::Rebind<hwy::float16_t, D4> d16;
  const auto vstep = hn::Set(d, step);
  auto store = [&](std::size_t j, std::size_t t, decltype(vstep) x) HWY_ATTR {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(j) * stride + static_cast<std::ptrdiff_t>(t);
    if (!dst_f16) {
      hn::StoreU(x, d, o32 + at);
    } else if constexpr (kSoftF16) {
      HWY_ALIGN float v[4];
      hn::Store(x, d, v);
      for (std::size_t i = 0; i < 4; ++i) o16[at + static_cast<std::ptrdiff_t>(i)] = agp::f32_to_f16(v[i]);
    } else {
      hn::StoreU(hn::DemoteTo(d16, x), d16, reinterpret_cast<hwy::float16_t*>(o16) + at);
    }
  };
  for (; j0 + 4 <= dim; j0 += 4) {
    const auto m = hn::LoadU(d, mean + j0);
    for (std::size_t t = 0; t < K; t += 4) {
      // mean + step * level: a product, then a sum, as dequantize_levels.
      auto r0 = hn::Add(m, hn::Mul(vstep, hn::LoadU(d, level + t * dim + j0)));
      auto r1 = hn::Add(m, hn::Mul(vstep, hn::LoadU(d, level + (t + 1) * dim + j0)));
      auto r2 = hn::Add(m, hn::Mul(vstep, hn::LoadU(d, level + (t + 2) * dim + j0)));
      auto r3 = hn::Add(m, hn::Mul(vstep, hn::LoadU(d, level + (t + 3) * dim + j0)));
      Transpose4x4(r0, r1, r2, r3);
      store(j0, t, r0);
      store(j0 + 1, t, r1);
      store(j0 + 2, t, r2);
      store(j0 + 3, t, r3);
    }
  }
#endif
  for (; j0 < dim; ++j0) {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(j0) * stride;
    for (std::size_t t = 0; t < K; ++t) {
      const float x = mean[j0] + step * level[t * dim + j0];
      const std::ptrdiff_t e = at + static_cast<std::ptrdiff_t>(t);
      if (dst_f16) {
        o16[e] = agp::f32_to_f16(x);
      } else {
        o32[e] = x;
      }
    }
  }
}

const char* TargetName() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace agp::codec::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace agp::codec::simd {

HWY_EXPORT(F16ToF32N);
HWY_EXPORT(F32ToF16N);
HWY_EXPORT(TargetName);
HWY_EXPORT(EncodeLoad);
HWY_EXPORT(EncodeTransform);
HWY_EXPORT(DecodeBlock);
HWY_EXPORT(QuantizeLutRows);
HWY_EXPORT(PackTile);
HWY_EXPORT(UnpackTile);
HWY_EXPORT(SubtractRows);
HWY_EXPORT(QuantizeRound);
HWY_EXPORT(DequantizeLevels);
HWY_EXPORT(QuantizeSymbols);
HWY_EXPORT(MaxAbs);
HWY_EXPORT(F16StridedToF32);
HWY_EXPORT(F32ToF16Strided);
HWY_EXPORT(TransposeToF32);
HWY_EXPORT(TransposeFromF32);
HWY_EXPORT(DequantizeToF16);

void dequantize_to_f16(const float* level, std::size_t count, const float* mean, float step,
                       std::uint16_t* x) {
  HWY_DYNAMIC_DISPATCH(DequantizeToF16)(level, count, mean, step, x);
}
HWY_EXPORT(RowsToLanes);

void transpose_to_f32(const void* src, bool src_f16, std::size_t rows, std::size_t cols,
                      std::ptrdiff_t src_stride, float* dst, std::size_t dst_stride) {
  HWY_DYNAMIC_DISPATCH(TransposeToF32)(src, src_f16, rows, cols, src_stride, dst, dst_stride);
}
void transpose_from_f32(const float* src, std::size_t rows, std::size_t cols, std::size_t src_stride,
                        void* dst, bool dst_f16, std::ptrdiff_t dst_stride) {
  HWY_DYNAMIC_DISPATCH(TransposeFromF32)(src, rows, cols, src_stride, dst, dst_f16, dst_stride);
}
void rows_to_lanes(const float* level, std::size_t dim, const float* mean, float step, void* base,
                   bool dst_f16, std::ptrdiff_t stride) {
  HWY_DYNAMIC_DISPATCH(RowsToLanes)(level, dim, mean, step, base, dst_f16, stride);
}

void f16_strided_to_f32(const std::uint16_t* base, std::ptrdiff_t stride, std::size_t rows,
                        std::size_t width, float* dst) {
  HWY_DYNAMIC_DISPATCH(F16StridedToF32)(base, stride, rows, width, dst);
}
void f32_to_f16_strided(const float* src, std::size_t rows, std::size_t width, std::uint16_t* base,
                        std::ptrdiff_t stride) {
  HWY_DYNAMIC_DISPATCH(F32ToF16Strided)(src, rows, width, base, stride);
}

float max_abs(const float* x, std::size_t count) { return HWY_DYNAMIC_DISPATCH(MaxAbs)(x, count); }

void quantize_symbols(const float* z, std::size_t rows, std::size_t dim, float inv,
                      const std::int32_t* shift, std::int32_t* q, std::uint8_t* sym) {
  HWY_DYNAMIC_DISPATCH(QuantizeSymbols)(z, rows, dim, inv, shift, q, sym);
}
HWY_EXPORT(ShiftAddLevels);
HWY_EXPORT(ReconLevels);
HWY_EXPORT(ShiftAddLevelsU8);

void shift_add_levels_u8(const std::int8_t* h, const std::uint8_t* r, std::size_t rows,
                         std::size_t m, int k, float* out, std::size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(ShiftAddLevelsU8)(h, r, rows, m, k, out, out_stride);
}

void shift_add_levels(const std::int8_t* h, const std::int32_t* r, std::size_t rows, std::size_t m,
                      int k, float* out, std::size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(ShiftAddLevels)(h, r, rows, m, k, out, out_stride);
}
void recon_levels(const std::int8_t* h, std::size_t rows, std::size_t m, const float* recon64,
                  float* out, std::size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(ReconLevels)(h, rows, m, recon64, out, out_stride);
}

void subtract_rows(const float* x, std::size_t rows, std::size_t dim, const float* mean, float* z) {
  HWY_DYNAMIC_DISPATCH(SubtractRows)(x, rows, dim, mean, z);
}
void quantize_round(const float* z, std::size_t count, float inv, std::int32_t* q) {
  HWY_DYNAMIC_DISPATCH(QuantizeRound)(z, count, inv, q);
}
void dequantize_levels(const float* level, std::size_t count, const float* mean, float step,
                       float* x) {
  HWY_DYNAMIC_DISPATCH(DequantizeLevels)(level, count, mean, step, x);
}

void f16_to_f32_n(const std::uint16_t* src, std::size_t n, float* dst) {
  HWY_DYNAMIC_DISPATCH(F16ToF32N)(src, n, dst);
}
void f32_to_f16_n(const float* src, std::size_t n, std::uint16_t* dst) {
  HWY_DYNAMIC_DISPATCH(F32ToF16N)(src, n, dst);
}
const char* dispatched_target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}
void encode_load(const void* src, bool src_f16, std::ptrdiff_t stride, std::size_t m,
                 const float* signs, float* x, float* ss) {
  HWY_DYNAMIC_DISPATCH(EncodeLoad)(src, src_f16, stride, m, signs, x, ss);
}
void encode_transform(float* x, std::size_t m, const float* inv, const float* boundaries, int bits,
                      std::uint8_t* idx) {
  HWY_DYNAMIC_DISPATCH(EncodeTransform)(x, m, inv, boundaries, bits, idx);
}
void decode_block(const std::uint8_t* idx, bool packed4, std::size_t m, const float* centroids,
                  int bits, const float* lane_scale, const float* signs, float* x, void* dst,
                  bool dst_f16, std::ptrdiff_t stride) {
  HWY_DYNAMIC_DISPATCH(DecodeBlock)
  (idx, packed4, m, centroids, bits, lane_scale, signs, x, dst, dst_f16, stride);
}
void quantize_lut_rows(const float* z, std::size_t m, float lo, float inv_bin, int bins,
                       const std::int32_t* start, const float* boundaries, int max_steps,
                       std::uint8_t* idx) {
  HWY_DYNAMIC_DISPATCH(QuantizeLutRows)(z, m, lo, inv_bin, bins, start, boundaries, max_steps, idx);
}
void pack_tile(const std::uint8_t* idx, std::size_t dim, int bits, std::size_t lanes,
               std::uint8_t* out, std::size_t stride) {
  HWY_DYNAMIC_DISPATCH(PackTile)(idx, dim, bits, lanes, out, stride);
}
void unpack_tile(const std::uint8_t* in, std::size_t stride, std::size_t dim, int bits,
                 std::size_t lanes, std::uint8_t* idx, bool keep_packed4) {
  HWY_DYNAMIC_DISPATCH(UnpackTile)(in, stride, dim, bits, lanes, idx, keep_packed4);
}

}  // namespace agp::codec::simd
#endif  // HWY_ONCE
