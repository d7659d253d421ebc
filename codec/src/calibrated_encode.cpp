// The calibrated codec's encoder: step search against the bit budget, table choice, emission.
#include <algorithm>
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
  std::uint64_t bits[kSubstreams] = {};  // prefix-coded bits of each substream
  std::uint64_t escapes = 0;
  std::uint64_t stream_bytes() const {
    std::uint64_t b = 0;
    for (std::uint64_t s : bits) b += (s + 7) / 8;
    return b;
  }
};

int base_of(int k) { return k == 0 ? 0 : (k == 1 ? kShiftOneBase : kShiftManyBase); }

// The table scale index of a group of rms `s` steps with `k` raw bits, within its family.
int level_of(double s, int k) {
  if (k == 0) return std::clamp(static_cast<int>(std::floor((std::log2(std::max(s, 1e-9)) + 3) * 8)), 0, 39);
  return std::clamp(static_cast<int>(std::floor((std::log2(s) - k - 1) * 8)), 0, 7);
}

inline int symbol_of(std::int32_t h) { return (h >= -kMaxH && h <= kMaxH) ? h + kMaxH : kEscape; }

// The cheapest table for per-substream histograms of symbols (an escape costs its code plus 32
// bits) among the scales near the group's (k = 0) or all of its family (k > 0), every shape.
void choose_table(const std::uint64_t (*hist)[kSymbols], double s, GroupPlan& plan) {
  std::uint64_t sum[kSymbols];
  for (int sym = 0; sym < kSymbols; ++sym) {
    sum[sym] = 0;
    for (int i = 0; i < kSubstreams; ++i) sum[sym] += hist[i][sym];
  }
  const int per_shape = plan.k == 0 ? 40 : 8;
  const int level = level_of(s, plan.k);
  const int first = plan.k == 0 ? std::max(0, level - 3) : 0;
  const int last = plan.k == 0 ? std::min(39, level + 3) : 7;
  std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
  for (int shape = 0; shape < 3; ++shape) {
    for (int l = first; l <= last; ++l) {
      const int t = base_of(plan.k) + shape * per_shape + l;
      const EncodeTable& e = encode_table(t);
      std::uint64_t bits = 0, escapes = 0;
      for (int sym = 0; sym < kSymbols; ++sym) {
        if (!sum[sym]) continue;
        if (sym != kEscape && e.len[sym]) {
          bits += sum[sym] * e.len[sym];
        } else {
          escapes += sum[sym];
        }
      }
      const std::uint64_t total = bits + escapes * (e.len[kEscape] + 32u);
      if (total < best) {
        best = total;
        plan.table = t;
        plan.escapes = escapes;
      }
    }
  }
  const EncodeTable& e = encode_table(plan.table);
  for (int i = 0; i < kSubstreams; ++i) {
    plan.bits[i] = 0;
    for (int sym = 0; sym < kSymbols; ++sym) {
      const int len = (sym != kEscape && e.len[sym]) ? e.len[sym] : e.len[kEscape];
      plan.bits[i] += hist[i][sym] * static_cast<std::uint64_t>(len);
    }
  }
}

struct Chunk {
  const Calibration& cal;
  std::uint64_t n;
  std::unique_ptr<float[]> z;           // [n * dim], x - mean
  std::unique_ptr<std::int32_t[]> q;    // [n * dim], the indices at the last planned step
  std::vector<double> group_rms;        // per group, in input units
  std::vector<int> group_shape;         // per group, the shape (0..2) its kurtosis suggests
  float max_abs = 0;
};

std::uint64_t group_bytes(const GroupPlan& p, std::uint64_t values) {
  return p.stream_bytes() + raw_bytes(values, p.k) + 4 * p.escapes;
}

// Quantizes every value with `step` and plans every group; returns the codes section's bytes.
std::uint64_t plan_groups(Chunk& c, float step, std::vector<GroupPlan>& plans) {
  const Calibration& cal = c.cal;
  const std::uint32_t dim = cal.dim;
  simd::quantize_round(c.z.get(), c.n * dim, 1.0f / step, c.q.get());
  std::uint64_t total = 0;
  for (std::size_t g = 0; g < cal.group_count(); ++g) {
    GroupPlan& p = plans[g];
    p = GroupPlan{};
    const double s = c.group_rms[g] / step;
    if (s < kZeroGroupSteps) continue;
    p.coded = true;
    p.k = raw_bits_for(s);
    const std::uint32_t a = cal.group_starts[g], b = cal.group_end(g);
    std::uint64_t hist[kSubstreams][kSymbols] = {};
    for (int i = 0; i < kSubstreams; ++i) {
      for (std::uint64_t v = substream_start(c.n, i); v < substream_start(c.n, i + 1); ++v) {
        const std::int32_t* row = c.q.get() + v * dim;
        for (std::uint32_t j = a; j < b; ++j) ++hist[i][symbol_of(row[j] >> p.k)];
      }
    }
    choose_table(hist, s, p);
    total += group_bytes(p, c.n * (b - a));
  }
  return total;
}

// Expected bytes of the codes at `step` from each group's rms and shape (no quantizing).
double model_bytes(const Chunk& c, double step) {
  const Calibration& cal = c.cal;
  double bits = 0;
  for (std::size_t g = 0; g < cal.group_count(); ++g) {
    const double s = c.group_rms[g] / step;
    if (s < kZeroGroupSteps) continue;
    const int k = raw_bits_for(s);
    const int t = base_of(k) + c.group_shape[g] * (k == 0 ? 40 : 8) + level_of(s, k);
    bits += static_cast<double>(c.n * (cal.group_end(g) - cal.group_starts[g])) *
            (static_cast<double>(k) + static_cast<double>(expected_bits(t)));
  }
  return bits / 8;
}

// The finest step found whose chunk fits `budget` bytes of codes: from the model, then checked
// and corrected against the exact size; c.q and plans are left at that step.
float choose_step(Chunk& c, double budget, std::vector<GroupPlan>& plans) {
  const float min_step = static_cast<float>(std::max<double>(c.max_abs / kMaxIndex, 1e-30));
  double lo = std::log(static_cast<double>(min_step));
  double hi = std::log(std::max<double>(c.max_abs, 1e-30) * 8);
  for (int i = 0; i < 50; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (model_bytes(c, std::exp(mid)) > budget * 0.995) lo = mid; else hi = mid;
  }
  float step = std::max(min_step, static_cast<float>(std::exp(hi)));
  float best = 0, planned = 0;
  for (int iter = 0; iter < 6; ++iter) {
    const auto bytes = static_cast<double>(plan_groups(c, step, plans));
    planned = step;
    double active = 0;
    for (std::size_t g = 0; g < c.cal.group_count(); ++g) {
      if (plans[g].coded) active += static_cast<double>(c.n * (c.cal.group_end(g) - c.cal.group_starts[g]));
    }
    if (bytes <= budget) {
      if (best == 0 || step < best) best = step;
      if (bytes >= budget * 0.99 || active == 0) break;
    }
    // About one bit per value more for each halving of the step.
    const double factor = std::exp2(8 * (bytes - budget * 0.995) / std::max(active, 1.0));
    const float next = std::max(min_step, static_cast<float>(step * factor));
    if (next == step) break;
    step = next;
  }
  for (int iter = 0; best == 0 && iter < 400; ++iter) {  // still over: coarsen until it fits
    step *= 1.05f;
    planned = step;
    if (static_cast<double>(plan_groups(c, step, plans)) <= budget) best = step;
  }
  if (best == 0) best = std::numeric_limits<float>::max();
  if (best != planned) plan_groups(c, best, plans);
  return best;
}

void load_rows(const TensorView& in, std::uint64_t first, std::uint64_t n, float* x) {
  const std::uint64_t count = n * in.dim();
  if (contiguous_rows(in) && in.dtype == DType::kF16) {
    simd::f16_to_f32_n(reinterpret_cast<const std::uint16_t*>(in.data) + first * in.dim(), count, x);
  } else if (contiguous_rows(in) && in.dtype == DType::kF32) {
    std::memcpy(x, reinterpret_cast<const float*>(in.data) + first * in.dim(), 4 * count);
  } else {
    VectorAccess(in).gather(first, n, x);
  }
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
  const double budget = config.bits_per_value * static_cast<double>(n) * dim / 8 -
                        static_cast<double>(config.reserved_bytes + cal_side_bytes(groups));
  if (budget < 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "calibrated codec: a budget of " + std::to_string(config.bits_per_value) +
                          " bits per value cannot hold the side data of " + std::to_string(n) + " vectors");
  }

  Chunk c{calibration, n, nullptr, nullptr, {}, {}, 0};
  const std::size_t count = static_cast<std::size_t>(n) * dim;
  c.z.reset(new float[count]);
  c.q.reset(new std::int32_t[count]);
  load_rows(in, first, n, reinterpret_cast<float*>(c.q.get()));  // q holds x until quantized
  const float* x = reinterpret_cast<const float*>(c.q.get());
  simd::subtract_rows(x, n, dim, calibration.mean.data(), c.z.get());
  c.group_rms.assign(groups, 0);
  c.group_shape.assign(groups, 0);
  // Moments per group with eight fixed partial sums per row segment (the same additions in the
  // same order whatever the compiler vectorizes), then those in order: the step depends on them,
  // and every build must choose the same step.
  std::vector<double> s2(groups, 0), s4(groups, 0);
  float amax[8] = {};
  for (std::uint64_t v = 0; v < n; ++v) {
    const float* row = c.z.get() + v * dim;
    for (std::size_t g = 0; g < groups; ++g) {
      float a2[8] = {}, a4[8] = {};
      const std::uint32_t a = calibration.group_starts[g], m = calibration.group_end(g) - a;
      const float* seg = row + a;
      std::uint32_t j = 0;
      for (; j + 8 <= m; j += 8) {
        for (int l = 0; l < 8; ++l) {
          const float z = seg[j + static_cast<std::uint32_t>(l)], z2 = z * z;
          a2[l] += z2;
          a4[l] += z2 * z2;
          amax[l] = std::max(amax[l], std::abs(z));
        }
      }
      for (int l = 0; j < m; ++j, ++l) {
        const float z = seg[j], z2 = z * z;
        a2[l] += z2;
        a4[l] += z2 * z2;
        amax[l] = std::max(amax[l], std::abs(z));
      }
      for (int l = 0; l < 8; ++l) {
        s2[g] += static_cast<double>(a2[l]);
        s4[g] += static_cast<double>(a4[l]);
      }
    }
  }
  for (float m : amax) c.max_abs = std::max(c.max_abs, m);
  double all = 0;
  for (double v : s2) all += v;
  if (!std::isfinite(all) || !std::isfinite(c.max_abs)) {
    for (std::size_t i = 0; i < count; ++i) {
      if (!std::isfinite(x[i])) return make_error(ErrorCode::kNonFiniteInput, "calibrated codec: NaN or infinity in the input");
    }
    return make_error(ErrorCode::kValueOutOfRange, "calibrated codec: value too large");
  }
  for (std::size_t g = 0; g < groups; ++g) {
    const double m = static_cast<double>(n * (calibration.group_end(g) - calibration.group_starts[g]));
    c.group_rms[g] = std::sqrt(s2[g] / m);
    const double m2 = s2[g] / m;
    const double kurt = m2 > 0 && std::isfinite(s4[g]) ? (s4[g] / m) / (m2 * m2) : 3.0;
    c.group_shape[g] = kurt < 4.25 ? 0 : (kurt < 12.3 ? 1 : 2);  // between 3, 6 and 25.2
  }

  std::vector<GroupPlan> plans(groups);
  const float step = choose_step(c, budget, plans);

  CalChunk out;
  out.side.resize(cal_side_bytes(groups));
  std::uint64_t total = 0, escapes_total = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    if (!plans[g].coded) continue;
    const std::uint64_t values = n * (calibration.group_end(g) - calibration.group_starts[g]);
    total += plans[g].stream_bytes() + raw_bytes(values, plans[g].k);
    escapes_total += plans[g].escapes;
  }
  out.codes.resize(total + 4 * escapes_total + 8);  // 8 bytes of slack for the bit writers
  auto* at = reinterpret_cast<std::uint8_t*>(out.codes.data());
  std::vector<std::int32_t> escapes;
  escapes.reserve(escapes_total);
  std::vector<std::int32_t> group_q;
  for (std::size_t g = 0; g < groups; ++g) {
    const GroupPlan& p = plans[g];
    std::byte* e = out.side.data() + kSideHeader + kSidePerGroup * g;
    e[0] = static_cast<std::byte>(p.coded ? 1 : 0);
    e[1] = static_cast<std::byte>(p.k);
    put_u16(e + 2, static_cast<std::uint16_t>(p.coded ? p.table : 0));
    if (!p.coded) continue;
    const std::uint32_t a = calibration.group_starts[g], m = calibration.group_end(g) - a;
    const EncodeTable& t = encode_table(p.table);
    for (int i = 0; i < kSubstreams; ++i) {
      // The writer's state in locals (a byte store may alias anything in memory), 32 bits
      // stored at a time with an 8-byte store whose upper half the next one rewrites.
      std::uint8_t* w = at;
      std::uint64_t acc = 0;
      int fill = 0;
      for (std::uint64_t v = substream_start(n, i); v < substream_start(n, i + 1); ++v) {
        const std::int32_t* row = c.q.get() + v * dim + a;
        for (std::uint32_t j = 0; j < m; ++j) {
          const std::int32_t h = row[j] >> p.k;
          int sym = symbol_of(h);
          if (!t.len[sym]) sym = kEscape;
          if (sym == kEscape) escapes.push_back(h);
          acc |= static_cast<std::uint64_t>(t.code[sym]) << fill;
          fill += t.len[sym];
          if (fill >= 32) {
            std::memcpy(w, &acc, 8);
            w += 4;
            acc >>= 32;
            fill -= 32;
          }
        }
      }
      std::memcpy(w, &acc, 8);
      std::uint8_t* end = w + (fill + 7) / 8;
      put_u32(e + 4 + 4 * i, static_cast<std::uint32_t>(end - at));
      at = end;
    }
    if (p.k > 0) {
      const std::uint64_t values = n * m;
      group_q.resize(values);
      for (std::uint64_t v = 0; v < n; ++v) std::memcpy(group_q.data() + v * m, c.q.get() + v * dim + a, 4 * m);
      pack_raw(group_q.data(), values, p.k, at);
      at += raw_bytes(values, p.k);
    }
  }
  if (!escapes.empty()) std::memcpy(at, escapes.data(), 4 * escapes.size());
  out.codes.resize(total + 4 * escapes_total);
  std::memcpy(out.side.data(), &step, 4);
  put_u64(out.side.data() + 4, calibration.id);
  put_u32(out.side.data() + 12, static_cast<std::uint32_t>(n));
  put_u32(out.side.data() + 16, static_cast<std::uint32_t>(escapes_total));
  return out;
}

}  // namespace agp::codec
