#include "agp/codec/calibrated.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cal_tables.hpp"

namespace agp::codec {
namespace {

using cal::DecodeEntry;
using cal::EncodeTable;

constexpr std::uint64_t kSideHeader = 20;  // step, calibration id, vectors, escape count
constexpr std::uint64_t kSidePerGroup = 8;  // mode, k, table, stream bytes
constexpr int kMaxRawBits = 24;
// A group whose values have an rms below this many steps is sent as zero: coding it would cost
// about a bit per value (a prefix code's minimum) to remove less error than one step's worth.
constexpr double kZeroGroupSteps = 0.3;
// Steps keep |q| below 2^29 so that q and h fit int32 with room.
constexpr double kMaxIndex = 536870912.0;

void put_u16(std::byte* p, std::uint16_t v) { std::memcpy(p, &v, 2); }
void put_u32(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
void put_u64(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
std::uint16_t get_u16(const std::byte* p) { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
std::uint32_t get_u32(const std::byte* p) { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
std::uint64_t get_u64(const std::byte* p) { std::uint64_t v; std::memcpy(&v, p, 8); return v; }

// Raw bits a group of rms `s` steps sends, so that h = q >> k has an rms of 2..4.
int raw_bits_for(double s) {
  if (s < 4) return 0;
  return std::min(kMaxRawBits, static_cast<int>(std::floor(std::log2(s))) - 1);
}

// LSB-first bit writer into a byte vector.
class BitWriter {
 public:
  explicit BitWriter(std::vector<std::byte>& out) : out_(out) {}
  void put(std::uint64_t bits, int n) {  // n <= 32
    acc_ |= bits << fill_;
    fill_ += n;
    if (fill_ >= 32) {
      std::byte b[4];
      put_u32(b, static_cast<std::uint32_t>(acc_));
      out_.insert(out_.end(), b, b + 4);
      acc_ >>= 32;
      fill_ -= 32;
    }
  }
  void finish() {
    while (fill_ > 0) {
      out_.push_back(static_cast<std::byte>(acc_ & 0xff));
      acc_ >>= 8;
      fill_ -= 8;
    }
    fill_ = 0;
    acc_ = 0;
  }

 private:
  std::vector<std::byte>& out_;
  std::uint64_t acc_ = 0;
  int fill_ = 0;
};

// LSB-first bit reader over exactly `bytes`; reads past the end see zeros and are caught by the
// caller comparing position() with the length.
class BitReader {
 public:
  BitReader(const std::byte* p, std::uint64_t bytes) : p_(reinterpret_cast<const std::uint8_t*>(p)), bytes_(bytes) {}
  std::uint64_t peek() const {  // at least 57 valid bits from position()
    const std::uint64_t byte = pos_ >> 3;
    std::uint64_t v = 0;
    if (byte + 8 <= bytes_) {
      std::memcpy(&v, p_ + byte, 8);
    } else {
      for (std::uint64_t i = 0; i < 8 && byte + i < bytes_; ++i) {
        v |= static_cast<std::uint64_t>(p_[byte + i]) << (8 * i);
      }
    }
    return v >> (pos_ & 7);
  }
  void skip(std::uint64_t n) { pos_ += n; }
  std::uint64_t position() const { return pos_; }

 private:
  const std::uint8_t* p_;
  std::uint64_t bytes_;
  std::uint64_t pos_ = 0;
};

struct GroupPlan {
  bool coded = false;
  int k = 0;
  int table = 0;
  std::uint64_t bits = 0;  // prefix-coded bits (escapes' int32 payloads not included)
  std::uint64_t escapes = 0;
};

// The tables a group of rms `s` steps with `k` raw bits chooses among.
void candidate_tables(double s, int k, int* first, int* last, int* stride_shapes) {
  if (k == 0) {
    const int level = std::clamp(static_cast<int>(std::floor((std::log2(std::max(s, 1e-9)) + 3) * 8)), 0, 39);
    *first = std::max(0, level - 3);
    *last = std::min(39, level + 3);
    *stride_shapes = 40;
  } else {
    *first = 0;
    *last = 7;
    *stride_shapes = 8;
  }
}

// Chooses the cheapest table for a histogram of symbols (escape costs its code plus 32 bits).
void choose_table(const std::uint64_t* hist, double s, GroupPlan& plan) {
  int first, last, stride;
  candidate_tables(s, plan.k, &first, &last, &stride);
  const int base = plan.k == 0 ? 0 : (plan.k == 1 ? cal::kShiftOneBase : cal::kShiftManyBase);
  std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
  for (int shape = 0; shape < 3; ++shape) {
    for (int level = first; level <= last; ++level) {
      const int t = base + shape * stride + level;
      const EncodeTable& e = cal::encode_table(t);
      std::uint64_t bits = 0, escapes = hist[cal::kEscape];
      for (int sym = 0; sym < cal::kEscape; ++sym) {
        if (!hist[sym]) continue;
        if (e.len[sym]) {
          bits += hist[sym] * e.len[sym];
        } else {
          escapes += hist[sym];
        }
      }
      bits += escapes * e.len[cal::kEscape];
      const std::uint64_t total = bits + 32 * escapes;
      if (total < best) {
        best = total;
        plan.table = t;
        plan.bits = bits;
        plan.escapes = escapes;
      }
    }
  }
}

struct Chunk {
  const Calibration& cal;
  std::uint64_t n;
  std::vector<float> z;           // [n * dim], x - mean
  std::vector<double> group_rms;  // per group, in input units
  float max_abs = 0;
};

inline std::int32_t quantize(float z, float inv_step) {
  return static_cast<std::int32_t>(std::nearbyint(z * inv_step));
}

inline int symbol_of(std::int32_t h) {
  return (h >= -cal::kMaxH && h <= cal::kMaxH) ? h + cal::kMaxH : cal::kEscape;
}

// Plans every group for `step`; returns the chunk's total bits (side data excluded).
std::uint64_t plan_groups(const Chunk& c, float step, std::vector<GroupPlan>& plans) {
  const Calibration& cal = c.cal;
  const float inv = 1.0f / step;
  std::uint64_t total = 0;
  for (std::size_t g = 0; g < cal.group_count(); ++g) {
    GroupPlan& p = plans[g];
    p = GroupPlan{};
    const double s = c.group_rms[g] / step;
    if (s < kZeroGroupSteps) continue;
    p.coded = true;
    p.k = raw_bits_for(s);
    const std::uint32_t a = cal.group_starts[g], b = cal.group_end(g);
    std::uint64_t hist[cal::kSymbols] = {};
    for (std::uint64_t v = 0; v < c.n; ++v) {
      const float* row = c.z.data() + v * cal.dim;
      for (std::uint32_t j = a; j < b; ++j) ++hist[symbol_of(quantize(row[j], inv) >> p.k)];
    }
    choose_table(hist, s, p);
    const std::uint64_t values = c.n * (b - a);
    total += p.bits + 32 * p.escapes + 8 * ((p.bits + 7) / 8 - p.bits / 8) +
             static_cast<std::uint64_t>(p.k) * values + 8;  // + byte padding allowances
  }
  return total;
}

// Picks the smallest step (finest quantizer) whose chunk fits `budget_bits`.
float choose_step(const Chunk& c, double budget_bits, std::vector<GroupPlan>& plans) {
  const Calibration& cal = c.cal;
  const float min_step = static_cast<float>(std::max<double>(c.max_abs / kMaxIndex, 1e-30));
  // Model first: a Gaussian group of rms s steps costs about 2.05 + log2(s) bits per value.
  auto model_bits = [&](double step) {
    double bits = 0;
    for (std::size_t g = 0; g < cal.group_count(); ++g) {
      const double s = c.group_rms[g] / step;
      if (s < kZeroGroupSteps) continue;
      bits += static_cast<double>(c.n * (cal.group_end(g) - cal.group_starts[g])) *
              std::max(1.0, 2.05 + std::log2(s));
    }
    return bits;
  };
  double lo = std::log(static_cast<double>(min_step)), hi = std::log(std::max<double>(c.max_abs, 1e-30) * 4 + 1e-30);
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (model_bits(std::exp(mid)) > budget_bits) lo = mid; else hi = mid;
  }
  float step = std::max(min_step, static_cast<float>(std::exp(hi)));
  // Then exact: a few secant-like corrections, keeping the finest step that fits.
  float best = 0;
  for (int iter = 0; iter < 8; ++iter) {
    const double bits = static_cast<double>(plan_groups(c, step, plans));
    double active = 0;
    for (std::size_t g = 0; g < cal.group_count(); ++g) {
      if (plans[g].coded) active += static_cast<double>(c.n * (cal.group_end(g) - cal.group_starts[g]));
    }
    if (bits <= budget_bits) {
      if (best == 0 || step < best) best = step;
      if (bits >= budget_bits * 0.997 || active == 0) break;
    }
    const double factor = std::exp2((bits - budget_bits * 0.998) / std::max(active, 1.0));
    const float next = std::max(min_step, static_cast<float>(step * factor));
    if (next == step) break;
    step = next;
  }
  // Still over: coarsen until it fits (all-zero groups cost nothing, so this ends).
  for (int iter = 0; best == 0 && iter < 400; ++iter) {
    step *= 1.05f;
    if (static_cast<double>(plan_groups(c, step, plans)) <= budget_bits) best = step;
  }
  if (best == 0) best = std::numeric_limits<float>::max();
  plan_groups(c, best, plans);
  return best;
}

}  // namespace

Status Calibration::validate() const {
  if (dim == 0 || dim > (1u << 24)) return make_error(ErrorCode::kInvalidArgument, "calibration: dim out of range");
  if (mean.size() != dim || scale.size() != dim) {
    return make_error(ErrorCode::kInvalidArgument, "calibration: mean and scale must have dim values");
  }
  for (std::uint32_t i = 0; i < dim; ++i) {
    if (!std::isfinite(mean[i]) || !std::isfinite(scale[i]) || scale[i] < 0) {
      return make_error(ErrorCode::kInvalidArgument, "calibration: non-finite mean or scale");
    }
  }
  if (group_starts.empty() || group_starts[0] != 0) {
    return make_error(ErrorCode::kInvalidArgument, "calibration: the first group must start at 0");
  }
  for (std::size_t g = 1; g < group_starts.size(); ++g) {
    if (group_starts[g] <= group_starts[g - 1] || group_starts[g] >= dim) {
      return make_error(ErrorCode::kInvalidArgument, "calibration: group starts must increase below dim");
    }
  }
  return Status::ok();
}

std::vector<std::uint32_t> make_calibration_groups(std::span<const float> scale, double ratio,
                                                   std::size_t max_groups) {
  const std::size_t d = scale.size();
  for (;; ratio *= std::sqrt(2.0)) {
    std::vector<std::uint32_t> starts;
    std::size_t start = 0;
    for (std::size_t c = 0; c < d; ++c) {
      if (c == start) {
        starts.push_back(static_cast<std::uint32_t>(c));
        continue;
      }
      if (static_cast<double>(scale[start]) > ratio * static_cast<double>(scale[c])) {
        start = c;
        starts.push_back(static_cast<std::uint32_t>(c));
      }
    }
    if (starts.size() <= max_groups || max_groups == 0) return starts;
  }
}

std::uint64_t cal_side_bytes(std::size_t groups) { return kSideHeader + kSidePerGroup * groups; }

Result<CalChunk> cal_encode(const TensorView& in, std::uint64_t first, std::uint64_t n,
                            const Calibration& calibration, const CalConfig& config) {
  AGP_RETURN_IF_ERROR(calibration.validate());
  AGP_RETURN_IF_ERROR(in.validate());
  const std::uint32_t dim = calibration.dim;
  if (in.dim() != dim) return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector length differs from the calibration's");
  if (n == 0 || first > in.vector_count() || n > in.vector_count() - first || n > 0xffffffffu) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector range out of bounds");
  }
  if (!(config.bits_per_value > 0) || !std::isfinite(config.bits_per_value)) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: bits_per_value must be positive");
  }
  const std::size_t groups = calibration.group_count();
  const double values = static_cast<double>(n) * dim;
  const double budget = config.bits_per_value * values -
                        8.0 * static_cast<double>(config.reserved_bytes + cal_side_bytes(groups));
  if (budget < 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "calibrated codec: a budget of " + std::to_string(config.bits_per_value) +
                          " bits per value cannot hold the side data of " + std::to_string(n) + " vectors");
  }

  Chunk c{calibration, n, {}, {}, 0};
  c.z.resize(static_cast<std::size_t>(n) * dim);
  VectorAccess(in).gather(first, n, c.z.data());
  for (std::uint64_t v = 0; v < n; ++v) {
    float* row = c.z.data() + v * dim;
    for (std::uint32_t j = 0; j < dim; ++j) {
      if (!std::isfinite(row[j])) return make_error(ErrorCode::kNonFiniteInput, "calibrated codec: NaN or infinity in the input");
      row[j] -= calibration.mean[j];
      if (!std::isfinite(row[j])) return make_error(ErrorCode::kValueOutOfRange, "calibrated codec: value too large");
      c.max_abs = std::max(c.max_abs, std::abs(row[j]));
    }
  }
  c.group_rms.assign(groups, 0);
  for (std::size_t g = 0; g < groups; ++g) {
    const std::uint32_t a = calibration.group_starts[g], b = calibration.group_end(g);
    double ss = 0;
    for (std::uint64_t v = 0; v < n; ++v) {
      const float* row = c.z.data() + v * dim;
      for (std::uint32_t j = a; j < b; ++j) ss += static_cast<double>(row[j]) * row[j];
    }
    c.group_rms[g] = std::sqrt(ss / static_cast<double>(n * (b - a)));
  }

  std::vector<GroupPlan> plans(groups);
  const float step = choose_step(c, budget, plans);
  const float inv = 1.0f / step;

  CalChunk out;
  out.side.resize(cal_side_bytes(groups));
  std::vector<std::int32_t> escapes;
  for (std::size_t g = 0; g < groups; ++g) {
    const GroupPlan& p = plans[g];
    std::byte* e = out.side.data() + kSideHeader + kSidePerGroup * g;
    e[0] = static_cast<std::byte>(p.coded ? 1 : 0);
    e[1] = static_cast<std::byte>(p.k);
    put_u16(e + 2, static_cast<std::uint16_t>(p.coded ? p.table : 0));
    if (!p.coded) continue;
    const std::uint32_t a = calibration.group_starts[g], b = calibration.group_end(g);
    const EncodeTable& t = cal::encode_table(p.table);
    const std::size_t stream_start = out.codes.size();
    {
      BitWriter w(out.codes);
      for (std::uint64_t v = 0; v < n; ++v) {
        const float* row = c.z.data() + v * dim;
        for (std::uint32_t j = a; j < b; ++j) {
          const std::int32_t h = quantize(row[j], inv) >> p.k;
          int sym = symbol_of(h);
          if (!t.len[sym]) sym = cal::kEscape;
          if (sym == cal::kEscape) escapes.push_back(h);
          w.put(t.code[sym], t.len[sym]);
        }
      }
      w.finish();
    }
    put_u32(e + 4, static_cast<std::uint32_t>(out.codes.size() - stream_start));
    if (p.k > 0) {
      BitWriter w(out.codes);
      const std::uint32_t mask = (1u << p.k) - 1;
      for (std::uint64_t v = 0; v < n; ++v) {
        const float* row = c.z.data() + v * dim;
        for (std::uint32_t j = a; j < b; ++j) {
          const auto q = static_cast<std::uint32_t>(quantize(row[j], inv));
          w.put(q & mask, p.k);
        }
      }
      w.finish();
    }
  }
  for (std::int32_t h : escapes) {
    std::byte b[4];
    put_u32(b, static_cast<std::uint32_t>(h));
    out.codes.insert(out.codes.end(), b, b + 4);
  }
  std::memcpy(out.side.data(), &step, 4);
  put_u64(out.side.data() + 4, calibration.id);
  put_u32(out.side.data() + 12, static_cast<std::uint32_t>(n));
  put_u32(out.side.data() + 16, static_cast<std::uint32_t>(escapes.size()));
  return out;
}

Result<CalSideSummary> cal_side_summary(std::span<const std::byte> side) {
  if (side.size() < kSideHeader) return make_error(ErrorCode::kBadEncodedData, "calibrated codec: side data too short");
  CalSideSummary s;
  std::memcpy(&s.step, side.data(), 4);
  s.calibration_id = get_u64(side.data() + 4);
  s.vectors = get_u32(side.data() + 12);
  return s;
}

Status cal_decode(std::span<const std::byte> side, std::span<const std::byte> codes,
                  const Calibration& calibration, const TensorView& out, std::uint64_t first,
                  std::uint64_t n) {
  auto bad = [](const std::string& what) {
    return make_error(ErrorCode::kBadEncodedData, "calibrated codec: " + what);
  };
  AGP_RETURN_IF_ERROR(calibration.validate());
  AGP_RETURN_IF_ERROR(out.validate());
  const std::uint32_t dim = calibration.dim;
  if (out.dim() != dim) return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector length differs from the calibration's");
  if (n == 0 || first > out.vector_count() || n > out.vector_count() - first) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector range out of bounds");
  }
  const std::size_t groups = calibration.group_count();
  if (side.size() != cal_side_bytes(groups)) return bad("side data of " + std::to_string(side.size()) + " bytes, the calibration's groups need " + std::to_string(cal_side_bytes(groups)));
  float step;
  std::memcpy(&step, side.data(), 4);
  if (!std::isfinite(step) || !(step > 0)) return bad("step is not a positive finite number");
  if (get_u64(side.data() + 4) != calibration.id) {
    return bad("the chunk was coded with calibration " + std::to_string(get_u64(side.data() + 4)) +
               ", this decoder holds " + std::to_string(calibration.id));
  }
  if (get_u32(side.data() + 12) != n) return bad("side data names another vector count");
  const std::uint64_t escape_count = get_u32(side.data() + 16);

  // Lay out the codes section from the side data, checking it is exactly what was sent.
  struct Layout {
    std::uint64_t stream, stream_bytes, raw, raw_bytes;
  };
  std::vector<Layout> layout(groups);
  std::uint64_t offset = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    const std::byte* e = side.data() + kSideHeader + kSidePerGroup * g;
    const auto mode = static_cast<std::uint8_t>(e[0]);
    const int k = static_cast<int>(e[1]);
    const int table = get_u16(e + 2);
    const std::uint64_t stream_bytes = get_u32(e + 4);
    if (mode > 1) return bad("group mode out of range");
    if (mode == 0) {
      if (k != 0 || table != 0 || stream_bytes != 0) return bad("a zero group carries fields");
      continue;
    }
    if (k > kMaxRawBits || !cal::table_fits(table, k)) return bad("group raw bits or table out of range");
    const std::uint64_t values = n * (calibration.group_end(g) - calibration.group_starts[g]);
    // Every value takes at least one bit of prefix code.
    if (stream_bytes < (values + 7) / 8 || stream_bytes > (values * cal::kMaxCodeBits + 7) / 8) {
      return bad("group stream length impossible for its values");
    }
    const std::uint64_t raw_bytes = (values * static_cast<std::uint64_t>(k) + 7) / 8;
    layout[g] = {offset, stream_bytes, offset + stream_bytes, raw_bytes};
    offset += stream_bytes + raw_bytes;
  }
  if (escape_count > n * dim) return bad("more escapes than values");
  if (offset + 4 * escape_count != codes.size()) {
    return bad("codes section of " + std::to_string(codes.size()) + " bytes, the side data describes " +
               std::to_string(offset + 4 * escape_count));
  }
  const std::byte* escape_data = codes.data() + offset;
  std::uint64_t next_escape = 0;

  std::vector<float> x(static_cast<std::size_t>(n) * dim);
  std::vector<std::int8_t> h;
  std::vector<std::int32_t> escaped;  // escape values of the current group, in order
  for (std::size_t g = 0; g < groups; ++g) {
    const std::uint32_t a = calibration.group_starts[g], b = calibration.group_end(g), m = b - a;
    const std::byte* e = side.data() + kSideHeader + kSidePerGroup * g;
    if (static_cast<std::uint8_t>(e[0]) == 0) {
      for (std::uint64_t v = 0; v < n; ++v) {
        std::memcpy(x.data() + v * dim + a, calibration.mean.data() + a, 4 * m);
      }
      continue;
    }
    const int k = static_cast<int>(e[1]);
    const int table = get_u16(e + 2);
    const std::uint64_t values = n * m;
    const Layout& l = layout[g];
    // Prefix-coded h values: three symbols per lookup while at least three remain.
    h.assign(values + 4, 0);
    escaped.clear();
    const DecodeEntry* dt = cal::decode_table(table);
    BitReader r(codes.data() + l.stream, l.stream_bytes);
    const std::uint64_t mask = (1u << cal::kMaxCodeBits) - 1;
    std::uint64_t done = 0;
    while (done < values) {
      const DecodeEntry& d = dt[r.peek() & mask];
      if (d.count == 0) return bad("a group stream holds bits that are no code");
      std::uint8_t take = d.count, bits = d.bits;
      if (values - done < take) {  // near the end: one symbol
        take = 1;
        bits = d.first_len;
      }
      std::memcpy(h.data() + done, d.h, 4);
      done += take;
      r.skip(bits);
      if (h[done - 1] == cal::kEscapeMark) {
        if (next_escape >= escape_count) return bad("more escape symbols than escapes");
        escaped.push_back(static_cast<std::int32_t>(get_u32(escape_data + 4 * next_escape++)));
      }
    }
    if ((r.position() + 7) / 8 != l.stream_bytes) return bad("a group stream's length does not match its symbols");
    if (r.position() % 8 && (r.peek() & ((1u << (8 - r.position() % 8)) - 1)) != 0) {
      return bad("nonzero padding bits after a group stream");
    }
    // Raw low bits and reconstruction.
    const float* recon = k == 0 ? cal::round_recon(table) : nullptr;
    BitReader raw(codes.data() + l.raw, l.raw_bytes);
    const std::uint64_t raw_mask = (1ull << k) - 1;
    std::size_t esc = 0;
    std::uint64_t i = 0;
    for (std::uint64_t v = 0; v < n; ++v) {
      float* row = x.data() + v * dim;
      for (std::uint32_t j = a; j < b; ++j, ++i) {
        std::int64_t hv = h[i];
        const bool is_escape = hv == cal::kEscapeMark;
        if (is_escape) {
          hv = escaped[esc++];
          if (hv >= -cal::kMaxH && hv <= cal::kMaxH && cal::encode_table(table).len[hv + cal::kMaxH]) {
            return bad("an escape carries a value that has a code");
          }
          if (hv > (static_cast<std::int64_t>(kMaxIndex) >> k) || hv < -(static_cast<std::int64_t>(kMaxIndex) >> k) - 1) {
            return bad("an escape value out of range");
          }
        }
        float level;
        if (k == 0) {
          level = is_escape ? static_cast<float>(hv) : recon[hv + cal::kMaxH];
        } else {
          const std::uint64_t lo = raw.peek() & raw_mask;
          raw.skip(static_cast<std::uint64_t>(k));
          level = static_cast<float>(hv * (std::int64_t{1} << k) + static_cast<std::int64_t>(lo));
        }
        row[j] = calibration.mean[j] + step * level;
      }
    }
    if (k > 0 && raw.position() % 8 && (raw.peek() & ((1u << (8 - raw.position() % 8)) - 1)) != 0) {
      return bad("nonzero padding bits after a group's raw bits");
    }
  }
  if (next_escape != escape_count) return bad("fewer escape symbols than escapes");
  VectorAccess(out).scatter(first, n, x.data());
  return Status::ok();
}

}  // namespace agp::codec
