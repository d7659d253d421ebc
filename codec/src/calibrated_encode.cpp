// The calibrated codec's encoder: step search against the bit budget, table choice, emission.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "agp/codec/calibrated.hpp"
#include "cal_format.hpp"
#include "cal_tables.hpp"
#include "simd_kernels.hpp"

namespace agp::codec {
namespace {

using namespace cal;

struct GroupPlan {
  bool coded = false;
  int k = 0;
  int table = 0;
  std::uint64_t bits[kSubstreams] = {};  // prefix-coded bits of each substream (from a sample)
  std::uint64_t escapes = 0;
};

int base_of(int k) { return k == 0 ? 0 : (k == 1 ? kShiftOneBase : kShiftManyBase); }

// The table scale index of a group of rms `s` steps with `k` raw bits, within its family.
int level_of(double s, int k) {
  if (k == 0) return std::clamp(static_cast<int>(std::floor((std::log2(std::max(s, 1e-9)) + 3) * 8)), 0, 39);
  return std::clamp(static_cast<int>(std::floor((std::log2(s) - k - 1) * 8)), 0, 7);
}

// Bits each symbol costs under each table: its code, or the escape's plus 32 (a symbol the table
// has no code for travels as an escape).
const std::uint32_t* symbol_costs(int table) {
  static const auto costs = [] {
    auto c = std::make_unique<std::uint32_t[]>(kTableCount * kSymbols);
    for (int t = 0; t < kTableCount; ++t) {
      const EncodeTable& e = encode_table(t);
      for (int sym = 0; sym < kSymbols; ++sym) {
        c[t * kSymbols + sym] = sym != kEscape && e.len[sym] ? e.len[sym] : e.len[kEscape] + 32u;
      }
    }
    return c;
  }();
  return costs.get() + table * kSymbols;
}

// The cheapest table for per-substream histograms of symbols (an escape costs its code plus 32
// bits) among the scales near the group's (k = 0) or all of its family (k > 0), every shape.
void choose_table(const std::uint64_t (*hist)[kSymbols], double s, GroupPlan& plan) {
  std::uint64_t sum[kSymbols];
  int present[kSymbols], count = 0;  // the symbols that occur: the candidates are scored on them
  for (int sym = 0; sym < kSymbols; ++sym) {
    sum[sym] = 0;
    for (int i = 0; i < kSubstreams; ++i) sum[sym] += hist[i][sym];
    if (sum[sym]) present[count++] = sym;
  }
  const int per_shape = plan.k == 0 ? 40 : 8;
  const int level = level_of(s, plan.k);
  const int first = plan.k == 0 ? std::max(0, level - 3) : 0;
  const int last = plan.k == 0 ? std::min(39, level + 3) : 7;
  std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
  for (int shape = 0; shape < 3; ++shape) {
    for (int l = first; l <= last; ++l) {
      const int t = base_of(plan.k) + shape * per_shape + l;
      const std::uint32_t* cost = symbol_costs(t);
      std::uint64_t total = 0;
      for (int i = 0; i < count; ++i) total += sum[present[i]] * cost[present[i]];
      if (total < best) {
        best = total;
        plan.table = t;
      }
    }
  }
  const EncodeTable& e = encode_table(plan.table);
  plan.escapes = 0;
  for (int i = 0; i < count; ++i) {
    const int sym = present[i];
    if (sym == kEscape || !e.len[sym]) plan.escapes += sum[sym];
  }
  for (int i = 0; i < kSubstreams; ++i) {
    plan.bits[i] = 0;
    for (int sym = 0; sym < kSymbols; ++sym) {
      const int len = (sym != kEscape && e.len[sym]) ? e.len[sym] : e.len[kEscape];
      plan.bits[i] += hist[i][sym] * static_cast<std::uint64_t>(len);
    }
  }
}

constexpr std::size_t kLanes = simd::kTileLanes;

// The chunk's rows as z = x - mean, f32, a few rows at a time (the input is read where it is).
class RowSource {
 public:
  RowSource(const TensorView& in, std::uint64_t first, const Calibration& cal)
      : in_(in), first_(first), cal_(cal), access_(in), rows_(contiguous_rows(in)) {}
  // Rows [v, v + rows) into z[rows * dim]; with x_max, the raw values' largest |x| (not finite
  // if one is not).
  void load(std::uint64_t v, std::uint64_t rows, float* z, float* x_max) const {
    const std::uint32_t dim = cal_.dim;
    const std::uint64_t at = (first_ + v) * dim;
    if (rows_ && in_.dtype == DType::kF16) {
      simd::f16_to_f32_n(reinterpret_cast<const std::uint16_t*>(in_.data) + at, rows * dim, z);
    } else if (rows_ && in_.dtype == DType::kF32) {
      std::memcpy(z, reinterpret_cast<const float*>(in_.data) + at, 4 * rows * dim);
    } else if (auto lanes = access_.lane_rows(first_ + v, rows); lanes && rows == kLanes) {
      // Channels-first (16 vectors side by side along a unit-stride axis): value j of the 16
      // vectors is 16 contiguous elements; read them so, transposed a block at a time.
      simd::transpose_to_f32(lanes->base, lanes->f16, dim, kLanes, lanes->stride, z, dim);
    } else {
      access_.gather(first_ + v, rows, z);
    }
    if (x_max) *x_max = simd::max_abs(z, rows * dim);
    simd::subtract_rows(z, rows, dim, cal_.mean.data(), z);
  }

  // The chunk's z kept whole after the first pass (every later pass reads it instead of
  // converting the input again), when it is at most CalConfig::max_cached_values values.
  void keep(float* cache) { cache_ = cache; }
  float* cache() const { return cache_; }
  // Rows [v, v + rows) of z: in the cache when there is one, else loaded into `tile`.
  const float* rows_at(std::uint64_t v, std::uint64_t rows, float* tile) const {
    if (cache_) return cache_ + v * cal_.dim;
    load(v, rows, tile, nullptr);
    return tile;
  }
  bool rows() const { return rows_; }

 private:
  const TensorView& in_;
  std::uint64_t first_;
  const Calibration& cal_;
  VectorAccess access_;
  bool rows_;
  float* cache_ = nullptr;
};

struct Stats {
  std::vector<double> rms;   // per group, in input units
  std::vector<double> log2_rms;  // per group (-infinity for 0): the step search needs no log
  std::vector<int> shape;    // per group, the table shape (0..2) its kurtosis suggests
  float max_abs = 0;         // of z
};

constexpr std::uint64_t kTileRows = kLanes;  // a tile of channels-first vectors

// Pass 1: |z| max over every value (it bounds the step) and each group's second and fourth
// moments from every `stride`-th vector (they guide the step search and the table shapes; the
// coded size is checked exactly afterwards). Sums in double in index order: every build picks
// the same step.
Status gather_stats(const RowSource& src, const Calibration& cal, std::uint64_t n,
                    std::uint64_t stride, Stats& st) {
  const std::uint32_t dim = cal.dim;
  const std::size_t groups = cal.group_count();
  thread_local std::vector<float> own_tile;  // kept: fresh pages per chunk cost more than the pass
  own_tile.resize(src.cache() ? 0 : kTileRows * dim);
  std::vector<double> s2(groups, 0), s4(groups, 0);
  std::uint64_t sampled = 0;
  for (std::uint64_t v0 = 0; v0 < n; v0 += kTileRows) {
    const std::uint64_t rows = std::min(kTileRows, n - v0);
    float* tile = src.cache() ? src.cache() + v0 * dim : own_tile.data();
    float x_max;
    src.load(v0, rows, tile, &x_max);
    if (!std::isfinite(x_max)) {
      return make_error(ErrorCode::kNonFiniteInput, "calibrated codec: NaN or infinity in the input");
    }
    const float z_max = simd::max_abs(tile, rows * dim);
    if (!std::isfinite(z_max)) return make_error(ErrorCode::kValueOutOfRange, "calibrated codec: value too large");
    st.max_abs = std::max(st.max_abs, z_max);
    for (std::uint64_t r = 0; r < rows; ++r) {
      if ((v0 + r) % stride) continue;
      ++sampled;
      const float* row = tile + r * dim;
      for (std::size_t g = 0; g < groups; ++g) {
        // Four running sums (value j into sum j % 4), added in a fixed order: independent chains
        // a core overlaps, and the same result on every build.
        double a2[4] = {0, 0, 0, 0}, a4[4] = {0, 0, 0, 0};
        std::uint32_t j = cal.group_starts[g];
        const std::uint32_t e = cal.group_end(g);
        for (; j + 4 <= e; j += 4) {
          for (int u = 0; u < 4; ++u) {
            const double z2 = static_cast<double>(row[j + static_cast<std::uint32_t>(u)]) * row[j + static_cast<std::uint32_t>(u)];
            a2[u] += z2;
            a4[u] += z2 * z2;
          }
        }
        for (int u = 0; j < e; ++j, ++u) {
          const double z2 = static_cast<double>(row[j]) * row[j];
          a2[u] += z2;
          a4[u] += z2 * z2;
        }
        s2[g] += (a2[0] + a2[1]) + (a2[2] + a2[3]);
        s4[g] += (a4[0] + a4[1]) + (a4[2] + a4[3]);
      }
    }
  }
  st.rms.resize(groups);
  st.log2_rms.resize(groups);
  st.shape.resize(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    const double m = static_cast<double>(sampled * (cal.group_end(g) - cal.group_starts[g]));
    const double m2 = s2[g] / m;
    st.rms[g] = std::sqrt(m2);
    st.log2_rms[g] = st.rms[g] > 0 ? std::log2(st.rms[g]) : -std::numeric_limits<double>::infinity();
    const double kurt = m2 > 0 ? (s4[g] / m) / (m2 * m2) : 3.0;
    st.shape[g] = kurt < 4.25 ? 0 : (kurt < 12.3 ? 1 : 2);  // between 3, 6 and 25.2
  }
  return Status::ok();
}

// Expected bytes of the codes at a step of 2^log2_step from each group's rms and shape (no
// quantizing; in log2 units, as raw_bits_for and level_of, without a logarithm per group).
double model_bytes(const Calibration& cal, const Stats& st, std::uint64_t n, double log2_step) {
  static const double kLog2Zero = std::log2(kZeroGroupSteps);
  double bits = 0;
  for (std::size_t g = 0; g < cal.group_count(); ++g) {
    const double l = st.log2_rms[g] - log2_step;  // log2 of the rms in steps
    if (!(l >= kLog2Zero)) continue;
    const int k = l < 2 ? 0 : std::min(kMaxRawBits, static_cast<int>(std::floor(l)) - 1);
    const int level = k == 0 ? std::clamp(static_cast<int>(std::floor((l + 3) * 8)), 0, 39)
                             : std::clamp(static_cast<int>(std::floor((l - k - 1) * 8)), 0, 7);
    const int t = base_of(k) + st.shape[g] * (k == 0 ? 40 : 8) + level;
    bits += static_cast<double>(n * (cal.group_end(g) - cal.group_starts[g])) *
            (static_cast<double>(k) + static_cast<double>(expected_bits(t)));
  }
  return bits / 8;
}

// Groups' k and tables for `step` from every `stride`-th vector, and the codes' bytes that
// sample predicts for all n vectors.
double plan_from_sample(const RowSource& src, const Calibration& cal, const Stats& st,
                        std::uint64_t n, std::uint64_t stride, float step,
                        std::vector<GroupPlan>& plans, std::vector<std::int32_t>& shift) {
  const std::uint32_t dim = cal.dim;
  const std::size_t groups = cal.group_count();
  for (std::size_t g = 0; g < groups; ++g) {
    GroupPlan& p = plans[g];
    p = GroupPlan{};
    const double s = st.rms[g] / step;
    p.coded = s >= kZeroGroupSteps;
    p.k = p.coded ? raw_bits_for(s) : 0;
    std::fill(shift.begin() + cal.group_starts[g], shift.begin() + cal.group_end(g), p.k);
  }
  // Kept per thread between calls: fresh pages for every chunk cost more than the sample.
  thread_local std::vector<float> z;
  thread_local std::vector<std::int32_t> q;
  thread_local std::vector<std::uint8_t> sym;
  thread_local std::vector<std::uint64_t> hist;
  z.resize(kTileRows * dim);
  q.resize(dim);
  sym.resize(dim);
  // Two counters per symbol (even and odd positions), summed after: a run of equal symbols
  // then waits on half as many increments of one counter.
  hist.assign(2 * groups * kSubstreams * kSymbols, 0);
  // Without the cache, rows are read one by one where vectors are contiguous rows, else as
  // whole tiles (the channels-first path reads 16 vectors at a time); every stride-th row is used.
  const bool by_row = src.rows() || src.cache();
  for (std::uint64_t v0 = 0; v0 < n; v0 += kTileRows) {
    const std::uint64_t rows = std::min(kTileRows, n - v0);
    const float* tile = by_row ? nullptr : src.rows_at(v0, rows, z.data());
    for (std::uint64_t r = 0; r < rows; ++r) {
      const std::uint64_t v = v0 + r;
      if (v % stride) continue;
      const float* row = by_row ? src.rows_at(v, 1, z.data() + r * dim) : tile + r * dim;
      simd::quantize_symbols(row, 1, dim, 1.0f / step, shift.data(), q.data(), sym.data());
      int sub = 0;
      while (sub + 1 < kSubstreams && v >= substream_start(n, sub + 1)) ++sub;
      for (std::size_t g = 0; g < groups; ++g) {
        if (!plans[g].coded) continue;
        std::uint64_t* h = hist.data() + 2 * (g * kSubstreams + static_cast<std::size_t>(sub)) * kSymbols;
        std::uint64_t* h1 = h + kSymbols;
        std::uint32_t j = cal.group_starts[g];
        const std::uint32_t e = cal.group_end(g);
        for (; j + 2 <= e; j += 2) {
          ++h[sym[j]];
          ++h1[sym[j + 1]];
        }
        if (j < e) ++h[sym[j]];
      }
    }
  }
  const double scale = static_cast<double>(stride);
  double bytes = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    GroupPlan& p = plans[g];
    if (!p.coded) continue;
    std::uint64_t h[kSubstreams][kSymbols];
    for (int i = 0; i < kSubstreams; ++i) {
      const std::uint64_t* pair = hist.data() + 2 * (g * kSubstreams + static_cast<std::size_t>(i)) * kSymbols;
      for (int s = 0; s < kSymbols; ++s) h[i][s] = pair[s] + pair[kSymbols + s];
    }
    choose_table(h, st.rms[g] / step, p);
    const std::uint64_t values = n * (cal.group_end(g) - cal.group_starts[g]);
    double code_bits = 0;
    for (std::uint64_t b : p.bits) code_bits += static_cast<double>(b);
    bytes += code_bits * scale / 8 + kSubstreams + static_cast<double>(raw_bytes(values, p.k)) +
             4.0 * static_cast<double>(p.escapes) * scale;
  }
  return bytes;
}

// One substream being written: LSB-first into its own region (sized for the longest codes,
// plus 8 bytes of slack for the 8-byte stores), two codes per table lookup; a symbol left over
// at the end of a row waits for the next row's first (the codes are the same either way).
//
// Appends `len` bits of `code` to the LSB-first stream at w holding `fill` (< 8) bits in `acc`:
// the 8-byte store happens either way, and the bytes it completed are kept.
inline void append_bits(std::uint8_t*& w, std::uint64_t& acc, std::uint32_t& fill,
                        std::uint32_t code, std::uint32_t len) {
  acc |= static_cast<std::uint64_t>(code) << fill;
  fill += len;
  const std::uint64_t word = acc;
  std::memcpy(w, &word, 8);
  w += fill >> 3;
  acc >>= fill & ~7u;
  fill &= 7;
}

struct SubWriter {
  std::uint8_t* begin = nullptr;
  std::uint8_t* w = nullptr;
  std::uint64_t acc = 0;
  std::uint32_t fill = 0;
  int pending = -1;          // a symbol waiting for its pair
  std::int32_t pending_h = 0;
  std::vector<std::int32_t> escapes;  // h of each escape, in order

  void put(std::uint32_t code, std::uint32_t len) { append_bits(w, acc, fill, code, len); }
  // `count` rows of m symbols, row r's at seg[r * stride] with values q[r * stride] >> k. The
  // writer's state stays in locals for the whole call (its byte stores may alias any member).
  void rows(const std::uint8_t* seg, const std::int32_t* q, std::size_t stride, std::uint64_t count,
            std::uint32_t m, int k, const std::uint32_t* pairs) {
    std::uint8_t* out = w;
    std::uint64_t bits = acc;
    std::uint32_t n = fill;
    int held = pending;
    std::int32_t held_h = pending_h;
    for (std::uint64_t r = 0; r < count; ++r, seg += stride, q += stride) {
      std::uint32_t j = 0;
      if (held >= 0) {
        const std::uint32_t e = pairs[static_cast<std::uint32_t>(held) * kSymbols + seg[0]];
        if (e & (1u << 22)) escapes.push_back(held_h);
        if (e & (1u << 23)) escapes.push_back(q[0] >> k);
        append_bits(out, bits, n, e & 0x3fffff, e >> 24);
        held = -1;
        j = 1;
      }
      // Two pairs (at most 44 bits) per store: with fewer than 8 bits held they fit the word,
      // and the chain through the fill is half as long as storing each.
      for (; j + 4 <= m; j += 4) {
        const std::uint32_t e1 = pairs[seg[j] * kSymbols + seg[j + 1]];
        const std::uint32_t e2 = pairs[seg[j + 2] * kSymbols + seg[j + 3]];
        if ((e1 | e2) & (3u << 22)) [[unlikely]] {
          if (e1 & (1u << 22)) escapes.push_back(q[j] >> k);
          if (e1 & (1u << 23)) escapes.push_back(q[j + 1] >> k);
          if (e2 & (1u << 22)) escapes.push_back(q[j + 2] >> k);
          if (e2 & (1u << 23)) escapes.push_back(q[j + 3] >> k);
        }
        bits |= static_cast<std::uint64_t>(e1 & 0x3fffff) << n;
        n += e1 >> 24;
        bits |= static_cast<std::uint64_t>(e2 & 0x3fffff) << n;
        n += e2 >> 24;
        std::memcpy(out, &bits, 8);
        out += n >> 3;
        bits >>= n & ~7u;
        n &= 7;
      }
      if (j + 2 <= m) {
        const std::uint32_t e = pairs[seg[j] * kSymbols + seg[j + 1]];
        if (e & (1u << 22)) escapes.push_back(q[j] >> k);
        if (e & (1u << 23)) escapes.push_back(q[j + 1] >> k);
        append_bits(out, bits, n, e & 0x3fffff, e >> 24);
        j += 2;
      }
      if (j < m) {
        held = seg[j];
        held_h = q[j] >> k;
      }
    }
    w = out;
    acc = bits;
    fill = n;
    pending = held;
    pending_h = held_h;
  }
  // The last symbol alone, then the partial word; returns the bytes written.
  std::uint64_t finish(const EncodeTable& table) {
    if (pending >= 0) {
      const int sym = table.len[pending] && pending != kEscape ? pending : kEscape;
      if (sym == kEscape) escapes.push_back(pending_h);
      put(table.code[sym], table.len[sym]);
      pending = -1;
    }
    const std::uint64_t word = acc;
    std::memcpy(w, &word, 8);
    return static_cast<std::uint64_t>(w - begin) + (fill + 7) / 8;
  }
};

// The four substream writers of one group fed side by side, row t of writer i being
// seg[i] + t * stride (m symbols, values q[i] + t * stride): each writer's bit chain is serial, four
// of them hide each other's latency. All four hold the same number of the group's symbols, so
// they hold a pending symbol (odd m) together.
struct WriterLane {
  std::uint8_t* out;
  std::uint64_t bits;
  std::uint32_t fill;
  int held;
  std::int32_t held_h;
  const std::uint8_t* seg;
  const std::int32_t* q;
  std::vector<std::int32_t>* escapes;
};

#define AGP_CAL_INLINE __attribute__((always_inline)) inline

AGP_CAL_INLINE void lane_pair_first(WriterLane& l, int k, const std::uint32_t* pairs) {
  const std::uint32_t e = pairs[static_cast<std::uint32_t>(l.held) * kSymbols + l.seg[0]];
  if (e & (3u << 22)) [[unlikely]] {
    if (e & (1u << 22)) l.escapes->push_back(l.held_h);
    if (e & (1u << 23)) l.escapes->push_back(l.q[0] >> k);
  }
  append_bits(l.out, l.bits, l.fill, e & 0x3fffff, e >> 24);
  l.held = -1;
}

AGP_CAL_INLINE void lane_four(WriterLane& l, std::uint32_t j, int k, const std::uint32_t* pairs) {
  const std::uint32_t e1 = pairs[l.seg[j] * kSymbols + l.seg[j + 1]];
  const std::uint32_t e2 = pairs[l.seg[j + 2] * kSymbols + l.seg[j + 3]];
  if ((e1 | e2) & (3u << 22)) [[unlikely]] {
    if (e1 & (1u << 22)) l.escapes->push_back(l.q[j] >> k);
    if (e1 & (1u << 23)) l.escapes->push_back(l.q[j + 1] >> k);
    if (e2 & (1u << 22)) l.escapes->push_back(l.q[j + 2] >> k);
    if (e2 & (1u << 23)) l.escapes->push_back(l.q[j + 3] >> k);
  }
  std::uint64_t bits = l.bits;
  std::uint32_t n = l.fill;
  bits |= static_cast<std::uint64_t>(e1 & 0x3fffff) << n;
  n += e1 >> 24;
  bits |= static_cast<std::uint64_t>(e2 & 0x3fffff) << n;
  n += e2 >> 24;
  std::memcpy(l.out, &bits, 8);
  l.out += n >> 3;
  l.bits = bits >> (n & ~7u);
  l.fill = n & 7;
}

AGP_CAL_INLINE void lane_tail(WriterLane& l, std::uint32_t j, std::uint32_t m, int k, const std::uint32_t* pairs) {
  if (j + 2 <= m) {
    const std::uint32_t e = pairs[l.seg[j] * kSymbols + l.seg[j + 1]];
    if (e & (1u << 22)) l.escapes->push_back(l.q[j] >> k);
    if (e & (1u << 23)) l.escapes->push_back(l.q[j + 1] >> k);
    append_bits(l.out, l.bits, l.fill, e & 0x3fffff, e >> 24);
    j += 2;
  }
  if (j < m) {
    l.held = l.seg[j];
    l.held_h = l.q[j] >> k;
  }
}

void write_four(SubWriter* const* ws, const std::uint8_t* const* seg, const std::int32_t* const* q,
                std::size_t stride, std::uint64_t count, std::uint32_t m, int k, const std::uint32_t* pairs) {
  auto lane = [&](int i) {
    SubWriter& w = *ws[i];
    return WriterLane{w.w, w.acc, w.fill, w.pending, w.pending_h, seg[i], q[i], &w.escapes};
  };
  WriterLane a = lane(0), b = lane(1), c = lane(2), d = lane(3);
  for (std::uint64_t r = 0; r < count; ++r) {
    std::uint32_t j = 0;
    if (a.held >= 0) {
      lane_pair_first(a, k, pairs), lane_pair_first(b, k, pairs);
      lane_pair_first(c, k, pairs), lane_pair_first(d, k, pairs);
      j = 1;
    }
    for (; j + 4 <= m; j += 4) {
      lane_four(a, j, k, pairs), lane_four(b, j, k, pairs);
      lane_four(c, j, k, pairs), lane_four(d, j, k, pairs);
    }
    lane_tail(a, j, m, k, pairs), lane_tail(b, j, m, k, pairs);
    lane_tail(c, j, m, k, pairs), lane_tail(d, j, m, k, pairs);
    for (WriterLane* l : {&a, &b, &c, &d}) l->seg += stride, l->q += stride;
  }
  const WriterLane* done[4] = {&a, &b, &c, &d};
  for (int i = 0; i < 4; ++i) {
    SubWriter& w = *ws[i];
    w.w = done[i]->out;
    w.acc = done[i]->bits;
    w.fill = done[i]->fill;
    w.pending = done[i]->held;
    w.pending_h = done[i]->held_h;
  }
}

// ORs the raw low bits of `rows` rows of m values (row t at q + t * stride) into a group's bit
// planes as values [at, at + rows * m) of the group: a piece may start or end inside an 8-value
// block that another piece shares (the planes start zeroed).
void or_raw(const std::int32_t* q, std::size_t stride, std::uint64_t rows, std::uint32_t m, int k,
            std::uint64_t at, std::vector<std::int32_t>& gq, std::vector<std::uint8_t>& packed,
            std::uint8_t* planes) {
  const std::uint64_t lead = at % 8, count = lead + rows * m;
  gq.assign(count + 8, 0);
  for (std::uint64_t t = 0; t < rows; ++t) std::memcpy(gq.data() + lead + t * m, q + t * stride, 4 * m);
  const std::uint64_t bytes = raw_bytes(count, k);
  packed.resize(bytes + 8);
  pack_raw(gq.data(), count, k, packed.data());
  std::uint8_t* dst = planes + at / 8 * static_cast<std::uint64_t>(k);
  for (std::uint64_t i = 0; i < bytes; ++i) dst[i] |= packed[i];
}

// Per-thread buffers kept between calls (fresh pages for every packet cost more than coding).
struct Scratch {
  std::vector<std::uint8_t> regions, raw;
  std::vector<float> z;  // the chunk's z, when it is small enough to keep
  std::vector<float> tile;
  std::vector<std::int32_t> q, gq;
  std::vector<std::uint8_t> sym, packed;
  std::vector<SubWriter> writers;
};

// Quantizing and coding tile by tile in vector order (the chunk's z is read from the input
// again): each group's substream writers in turn.
void code_in_order(const RowSource& src, const Calibration& cal, std::uint64_t n, float step,
                   const std::vector<GroupPlan>& plans, const std::vector<std::int32_t>& shift,
                   Scratch& w, const std::vector<std::uint64_t>& raw_at) {
  const std::uint32_t dim = cal.dim;
  const std::size_t groups = cal.group_count();
  w.tile.resize(kTileRows * dim);
  w.q.resize(kTileRows * dim);
  w.sym.resize(kTileRows * dim);
  for (std::uint64_t v0 = 0; v0 < n; v0 += kTileRows) {
    const std::uint64_t rows = std::min(kTileRows, n - v0);
    const float* z = src.rows_at(v0, rows, w.tile.data());
    simd::quantize_symbols(z, rows, dim, 1.0f / step, shift.data(), w.q.data(), w.sym.data());
    for (std::size_t g = 0; g < groups; ++g) {
      const GroupPlan& p = plans[g];
      if (!p.coded) continue;
      const std::uint32_t a = cal.group_starts[g], m = cal.group_end(g) - a;
      const std::uint32_t* pairs = pair_codes(p.table);
      // The tile's rows in runs that stay in one substream.
      for (std::uint64_t r = 0; r < rows;) {
        int sub = 0;
        while (sub + 1 < kSubstreams && v0 + r >= substream_start(n, sub + 1)) ++sub;
        const std::uint64_t end =
            std::min(rows, (sub + 1 < kSubstreams ? substream_start(n, sub + 1) : n) - v0);
        w.writers[g * kSubstreams + static_cast<std::size_t>(sub)].rows(
            w.sym.data() + r * dim + a, w.q.data() + r * dim + a, dim, end - r, m, p.k, pairs);
        r = end;
      }
      if (p.k > 0) {  // this tile's values of the group start on an 8-value block
        w.gq.resize(rows * m);
        for (std::uint64_t r = 0; r < rows; ++r) std::memcpy(w.gq.data() + r * m, w.q.data() + r * dim + a, 4 * m);
        pack_raw(w.gq.data(), rows * m, p.k, w.raw.data() + raw_at[g] + v0 * m / 8 * static_cast<std::uint64_t>(p.k));
      }
    }
  }
}

// The chunk's z in memory: rows r.. of the four quarters are quantized together and each group's
// four writers fed side by side; the quarters' last rows beyond the shortest one's, one by one.
void code_quarters(const float* z, const Calibration& cal, std::uint64_t n, float step,
                   const std::vector<GroupPlan>& plans, const std::vector<std::int32_t>& shift,
                   Scratch& w, const std::vector<std::uint64_t>& raw_at) {
  constexpr std::uint64_t kRows = 4;  // per quarter and tile
  const std::uint32_t dim = cal.dim;
  const std::size_t groups = cal.group_count();
  const float inv = 1.0f / step;
  std::uint64_t start[kSubstreams + 1];
  for (int i = 0; i <= kSubstreams; ++i) start[i] = substream_start(n, i);
  const std::uint64_t common = start[1] - start[0];  // the shortest quarter
  const std::size_t quarter = kRows * dim;
  w.q.resize(kSubstreams * quarter);
  w.sym.resize(kSubstreams * quarter);
  auto raw_piece = [&](std::size_t g, const std::int32_t* q, std::uint64_t rows, std::uint64_t first_row) {
    const std::uint32_t a = cal.group_starts[g], m = cal.group_end(g) - a;
    or_raw(q + a, dim, rows, m, plans[g].k, first_row * m, w.gq, w.packed, w.raw.data() + raw_at[g]);
  };
  for (std::uint64_t r0 = 0; r0 < common; r0 += kRows) {
    const std::uint64_t rows = std::min(kRows, common - r0);
    for (int i = 0; i < kSubstreams; ++i) {
      simd::quantize_symbols(z + (start[i] + r0) * dim, rows, dim, inv, shift.data(),
                             w.q.data() + static_cast<std::size_t>(i) * quarter,
                             w.sym.data() + static_cast<std::size_t>(i) * quarter);
    }
    for (std::size_t g = 0; g < groups; ++g) {
      const GroupPlan& p = plans[g];
      if (!p.coded) continue;
      const std::uint32_t a = cal.group_starts[g], m = cal.group_end(g) - a;
      SubWriter* ws[kSubstreams];
      const std::uint8_t* seg[kSubstreams];
      const std::int32_t* qs[kSubstreams];
      for (int i = 0; i < kSubstreams; ++i) {
        ws[i] = &w.writers[g * kSubstreams + static_cast<std::size_t>(i)];
        seg[i] = w.sym.data() + static_cast<std::size_t>(i) * quarter + a;
        qs[i] = w.q.data() + static_cast<std::size_t>(i) * quarter + a;
      }
      write_four(ws, seg, qs, dim, rows, m, p.k, pair_codes(p.table));
      if (p.k > 0) {
        for (int i = 0; i < kSubstreams; ++i) {
          raw_piece(g, w.q.data() + static_cast<std::size_t>(i) * quarter, rows, start[i] + r0);
        }
      }
    }
  }
  for (int i = 0; i < kSubstreams; ++i) {
    for (std::uint64_t v = start[i] + common; v < start[i + 1]; ++v) {
      simd::quantize_symbols(z + v * dim, 1, dim, inv, shift.data(), w.q.data(), w.sym.data());
      for (std::size_t g = 0; g < groups; ++g) {
        const GroupPlan& p = plans[g];
        if (!p.coded) continue;
        const std::uint32_t a = cal.group_starts[g], m = cal.group_end(g) - a;
        w.writers[g * kSubstreams + static_cast<std::size_t>(i)].rows(w.sym.data() + a, w.q.data() + a, dim, 1, m,
                                                                      p.k, pair_codes(p.table));
        if (p.k > 0) raw_piece(g, w.q.data(), 1, v);
      }
    }
  }
}

// Pass 2 and the coding in one: tiles of rows are quantized and each group's symbols and raw
// bits appended to its substreams as they come. Writes the codes section into `codes` and the
// side entries; returns the codes' bytes (escapes included).
std::uint64_t code_chunk(const RowSource& src, const Calibration& cal, std::uint64_t n,
                         float step, const std::vector<GroupPlan>& plans,
                         const std::vector<std::int32_t>& shift, Scratch& w, std::byte* side,
                         std::vector<std::byte>& codes) {
  const std::size_t groups = cal.group_count();
  // Regions: per coded group its four substreams (room for the longest codes) and raw bits.
  std::vector<std::uint64_t> raw_at(groups, 0);
  std::uint64_t stream_room = 0, raw_room = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    if (!plans[g].coded) continue;
    const std::uint64_t m = cal.group_end(g) - cal.group_starts[g];
    for (int i = 0; i < kSubstreams; ++i) {
      stream_room += ((substream_start(n, i + 1) - substream_start(n, i)) * m * kMaxCodeBits + 7) / 8 + 16;
    }
    raw_at[g] = raw_room;
    raw_room += raw_bytes(n * m, plans[g].k);
  }
  if (w.regions.size() < stream_room) w.regions.resize(stream_room);
  if (w.raw.size() < raw_room + 8) w.raw.resize(raw_room + 8);
  std::memset(w.raw.data(), 0, raw_room + 8);  // pieces of a block are ORed in
  w.writers.assign(groups * kSubstreams, SubWriter{});
  std::uint64_t at = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    if (!plans[g].coded) continue;
    const std::uint64_t m = cal.group_end(g) - cal.group_starts[g];
    for (int i = 0; i < kSubstreams; ++i) {
      SubWriter& sw = w.writers[g * kSubstreams + static_cast<std::size_t>(i)];
      sw.begin = sw.w = w.regions.data() + at;
      at += ((substream_start(n, i + 1) - substream_start(n, i)) * m * kMaxCodeBits + 7) / 8 + 16;
    }
  }
  if (src.cache()) {
    code_quarters(src.cache(), cal, n, step, plans, shift, w, raw_at);
  } else {
    code_in_order(src, cal, n, step, plans, shift, w, raw_at);
  }
  // The codes section: per group its substreams and raw bits, then every escape.
  std::uint64_t total = 0, escapes = 0;
  std::vector<std::uint64_t> lengths(groups * kSubstreams, 0);
  for (std::size_t g = 0; g < groups; ++g) {
    std::byte* e = side + kSideHeader + kSidePerGroup * g;
    std::memset(e, 0, kSidePerGroup);
    if (!plans[g].coded) continue;
    e[0] = std::byte{1};
    e[1] = static_cast<std::byte>(plans[g].k);
    put_u16(e + 2, static_cast<std::uint16_t>(plans[g].table));
    const EncodeTable& table = encode_table(plans[g].table);
    for (int i = 0; i < kSubstreams; ++i) {
      SubWriter& sw = w.writers[g * kSubstreams + static_cast<std::size_t>(i)];
      const std::uint64_t len = sw.finish(table);
      lengths[g * kSubstreams + static_cast<std::size_t>(i)] = len;
      put_u32(e + 4 + 4 * i, static_cast<std::uint32_t>(len));
      total += len;
      escapes += sw.escapes.size();
    }
    total += raw_bytes(n * (cal.group_end(g) - cal.group_starts[g]), plans[g].k);
  }
  codes.resize(total + 4 * escapes);
  auto* out = reinterpret_cast<std::uint8_t*>(codes.data());
  for (std::size_t g = 0; g < groups; ++g) {
    if (!plans[g].coded) continue;
    for (int i = 0; i < kSubstreams; ++i) {
      const SubWriter& sw = w.writers[g * kSubstreams + static_cast<std::size_t>(i)];
      const std::uint64_t len = lengths[g * kSubstreams + static_cast<std::size_t>(i)];
      std::memcpy(out, sw.begin, len);
      out += len;
    }
    const std::uint64_t rb = raw_bytes(n * (cal.group_end(g) - cal.group_starts[g]), plans[g].k);
    std::memcpy(out, w.raw.data() + raw_at[g], rb);
    out += rb;
  }
  for (std::size_t g = 0; g < groups; ++g) {
    for (int i = 0; i < kSubstreams && plans[g].coded; ++i) {
      const auto& esc = w.writers[g * kSubstreams + static_cast<std::size_t>(i)].escapes;
      if (!esc.empty()) std::memcpy(out, esc.data(), 4 * esc.size());
      out += 4 * esc.size();
    }
  }
  put_u32(side + 16, static_cast<std::uint32_t>(escapes));
  return total + 4 * escapes;
}

}  // namespace

Result<CalChunk> cal_encode(const TensorView& in, std::uint64_t first, std::uint64_t n,
                            const Calibration& calibration, const CalConfig& config) {
  AGP_RETURN_IF_ERROR(calibration.validate());
  AGP_RETURN_IF_ERROR(in.validate());
  const std::uint32_t dim = calibration.dim;
  if (in.dim() != dim) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector length differs from the calibration's");
  }
  if (n == 0 || first > in.vector_count() || n > in.vector_count() - first || n > 0xffffffffu) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector range out of bounds");
  }
  if (!(config.bits_per_value > 0) || !std::isfinite(config.bits_per_value)) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: bits_per_value must be positive");
  }
  const std::size_t groups = calibration.group_count();
  // The codes get the budget less the frame and side data; a chunk whose overhead would take more
  // than half of it (the last of a packet cut in chunks that do not divide it) gets the whole
  // budget for its codes and goes over by its overhead, instead of failing or sending nothing.
  const double nominal = config.bits_per_value * static_cast<double>(n) * dim / 8;
  const double net = nominal - static_cast<double>(config.reserved_bytes + cal_side_bytes(groups));
  const double budget = net >= nominal / 2 ? net : nominal;
  thread_local Scratch scratch;
  RowSource src(in, first, calibration);
  if (n * dim <= config.max_cached_values) {
    if (scratch.z.size() < n * dim) scratch.z.resize(n * dim);
    src.keep(scratch.z.data());
  }
  const std::uint64_t stride = n >= 64 ? 4 : 1;
  Stats st;
  AGP_RETURN_IF_ERROR(gather_stats(src, calibration, n, stride, st));

  // The step: from the model, then from samples (aiming a little under the budget, for the
  // sample's error of about 1%), then from the exact size.
  const float min_step = static_cast<float>(std::max<double>(st.max_abs / kMaxIndex, 1e-30));
  double lo = std::log(static_cast<double>(min_step));
  double hi = std::log(std::max<double>(st.max_abs, 1e-30) * 8);
  for (int i = 0; i < 50; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (model_bytes(calibration, st, n, mid / std::log(2.0)) > budget * 0.993) lo = mid; else hi = mid;
  }
  float step = std::max(min_step, static_cast<float>(std::exp(hi)));
  std::vector<GroupPlan> plans(groups);
  std::vector<std::int32_t> shift(dim, 0);
  auto active_values = [&] {
    double active = 0;
    for (std::size_t g = 0; g < groups; ++g) {
      if (plans[g].coded) active += static_cast<double>(n * (calibration.group_end(g) - calibration.group_starts[g]));
    }
    return std::max(active, 1.0);
  };
  // Whether `s` keeps every group's coding (sent or zero, raw bits): then the tables the sample
  // chose still fit, and the exact size is checked when coding.
  auto same_plan = [&](float s) {
    for (std::size_t g = 0; g < groups; ++g) {
      const double r = st.rms[g] / s;
      const bool coded = r >= kZeroGroupSteps;
      if (coded != plans[g].coded || (coded && raw_bits_for(r) != plans[g].k)) return false;
    }
    return true;
  };
  for (int iter = 0;; ++iter) {
    const double bytes = plan_from_sample(src, calibration, st, n, stride, step, plans, shift);
    if (iter == 2 || (bytes <= budget * 0.997 && bytes >= budget * 0.989)) break;
    // About one bit per value more for each halving of the step.
    const float next =
        std::max(min_step, static_cast<float>(step * std::exp2(8 * (bytes - budget * 0.993) / active_values())));
    const bool keep = same_plan(next);
    step = next;
    if (keep) break;
  }

  // Code, then correct the step while the chunk is over the budget or leaves more than 2% of it
  // unused (at most one correction of an unused budget), keeping the finest chunk that fits.
  CalChunk out;
  std::vector<std::byte> side(cal_side_bytes(groups)), codes;
  std::uint64_t best = 0;
  float best_step = 0;
  int refinements = 0;
  for (int iter = 0; iter < 200; ++iter) {
    const std::uint64_t bytes = code_chunk(src, calibration, n, step, plans, shift, scratch, side.data(), codes);
    const auto b = static_cast<double>(bytes);
    if (b <= budget && bytes > best) {
      best = bytes;
      best_step = step;
      out.side = side;
      std::swap(out.codes, codes);
    }
    if (b <= budget && (b >= budget * 0.98 || refinements == 1)) break;
    if (b <= budget) ++refinements;
    if (b > budget && best != 0) break;  // a finer step overshot: keep the one that fit
    // About one bit per value more for each halving of the step.
    const double factor = std::exp2(8 * (b - budget * 0.993) / active_values());
    step = std::max(min_step, static_cast<float>(step * (b > budget ? std::max(1.01, factor) : factor)));
    plan_from_sample(src, calibration, st, n, stride, step, plans, shift);
  }
  if (best == 0) {
    // Nothing fit: the step that sends every group as zero (no codes) always does.
    double rms = 0;
    for (double r : st.rms) rms = std::max(rms, r);
    step = std::max(min_step, static_cast<float>(rms / kZeroGroupSteps * 1.01 + 1e-30));
    plan_from_sample(src, calibration, st, n, stride, step, plans, shift);
    best = code_chunk(src, calibration, n, step, plans, shift, scratch, side.data(), codes);
    best_step = step;
    out.side = side;
    out.codes = codes;
  }
  // Every group sent as zero though the values are not the mean: the rate could not pay for the
  // codes' fixed costs (a chunk of a vector or two with many groups). The decode would be the
  // calibration's mean, silently far from the input: refuse instead.
  bool any_coded = false;
  for (std::size_t g = 0; g < groups && !any_coded; ++g) {
    any_coded = out.side[kSideHeader + kSidePerGroup * g] == std::byte{1};
  }
  if (!any_coded && st.max_abs > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", config.bits_per_value);
    return make_error(ErrorCode::kInvalidArgument,
                      "calibrated codec: " + std::to_string(n) + " vector(s) of " +
                          std::to_string(dim) + " cannot be coded at " +
                          rate + " bits per value with " +
                          std::to_string(groups) +
                          " groups (every group would be sent as zero); send more vectors per "
                          "chunk, use a calibration with fewer groups, or another codec");
  }
  step = best_step;
  std::memcpy(out.side.data(), &step, 4);
  put_u64(out.side.data() + 4, calibration.id);
  put_u32(out.side.data() + 12, static_cast<std::uint32_t>(n));
  return out;
}

}  // namespace agp::codec
