// The calibrated codec's decoder: the side data checked against the calibration, four prefix-
// coded substreams per group decoded side by side (up to four symbols per table lookup), raw
// low bits, then mean + step * level.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "cal_format.hpp"
#include "cal_tables.hpp"
#include "simd_kernels.hpp"

namespace agp::codec {
namespace {

using namespace cal;

#define AGP_CAL_INLINE __attribute__((always_inline))

constexpr std::uint64_t kLookupMask = (1u << kLookupBits) - 1;

Status bad(const std::string& what) {
  return make_error(ErrorCode::kBadEncodedData, "calibrated codec: " + what);
}

// One substream being decoded: where its bytes are, how far it got.
struct Substream {
  const std::uint8_t* begin;
  std::uint64_t len;        // bytes
  std::uint64_t pos = 0;    // next byte not yet in buf (may pass len: zeros are read there)
  std::uint64_t buf = 0;    // LSB-first bits, `avail` of them valid
  int avail = 0;
  std::int8_t* out;         // next symbol's slot
  std::int8_t* out_end;
  std::uint64_t bits_used() const { return pos * 8 - static_cast<std::uint64_t>(avail); }
  // Reads up to 8 bytes at `at` without passing the end (zeros after it).
  std::uint64_t load(std::uint64_t at) const {
    std::uint64_t w = 0;
    if (at + 8 <= len) {
      std::memcpy(&w, begin + at, 8);
    } else if (at < len) {
      std::memcpy(&w, begin + at, static_cast<std::size_t>(len - at));
    }
    return w;
  }
  void refill() {  // to at least 56 valid bits (as if zeros followed the end)
    buf |= load(pos) << avail;
    pos += static_cast<std::uint64_t>((63 - avail) >> 3);
    avail |= 56;
  }
};

// Escape positions found so far, bounded by what the side data announced: a stream of escapes
// cannot make the decoder hold more than that.
struct EscapeSink {
  std::vector<std::uint64_t>* at;  // per substream
  std::uint64_t left;
  bool add(int i, std::uint64_t position) {
    if (left == 0) return false;
    --left;
    at[i].push_back(position);
    return true;
  }
};

// Decodes the substreams' symbols into their output ranges; escapes are recorded as (symbol
// index within the group, in stream order per substream).
Status decode_substreams(Substream* s, int count, const DecodeEntry* dt, std::int8_t* h_base,
                         EscapeSink& escapes) {
  // Side by side while every substream has 16 symbols to go and 8 bytes to read.
  if (count == kSubstreams) {
    // The four substreams' state in locals (byte stores may alias anything in memory).
    std::uint64_t b0 = s[0].buf, b1 = s[1].buf, b2 = s[2].buf, b3 = s[3].buf;
    int a0 = s[0].avail, a1 = s[1].avail, a2 = s[2].avail, a3 = s[3].avail;
    std::uint64_t p0 = s[0].pos, p1 = s[1].pos, p2 = s[2].pos, p3 = s[3].pos;
    std::int8_t *o0 = s[0].out, *o1 = s[1].out, *o2 = s[2].out, *o3 = s[3].out;
    bool invalid = false, flood = false;
    auto step = [&](std::uint64_t& buf, int& avail, std::int8_t*& out, int i) AGP_CAL_INLINE {
      const DecodeEntry d = dt[buf & kLookupMask];
      std::memcpy(out, d.h, 4);
      out += d.count;
      buf >>= d.bits;
      avail -= d.bits;
      invalid |= d.count == 0;
      if (d.escape_last && !escapes.add(i, static_cast<std::uint64_t>(out - 1 - h_base))) flood = true;
    };
    auto refill = [](std::uint64_t& buf, int& avail, std::uint64_t& pos, const std::uint8_t* base) AGP_CAL_INLINE {
      std::uint64_t w;
      std::memcpy(&w, base + pos, 8);
      buf |= w << avail;
      pos += static_cast<std::uint64_t>((63 - avail) >> 3);
      avail |= 56;
    };
    while (o0 + 16 <= s[0].out_end && o1 + 16 <= s[1].out_end && o2 + 16 <= s[2].out_end &&
           o3 + 16 <= s[3].out_end && p0 + 8 <= s[0].len && p1 + 8 <= s[1].len &&
           p2 + 8 <= s[2].len && p3 + 8 <= s[3].len) {
      refill(b0, a0, p0, s[0].begin), refill(b1, a1, p1, s[1].begin);
      refill(b2, a2, p2, s[2].begin), refill(b3, a3, p3, s[3].begin);
      for (int u = 0; u < 4; ++u) {
        step(b0, a0, o0, 0), step(b1, a1, o1, 1), step(b2, a2, o2, 2), step(b3, a3, o3, 3);
      }
      if (invalid) return bad("a group stream holds bits that are no code");
      if (flood) return bad("more escape symbols than escapes");
    }
    s[0].buf = b0, s[1].buf = b1, s[2].buf = b2, s[3].buf = b3;
    s[0].avail = a0, s[1].avail = a1, s[2].avail = a2, s[3].avail = a3;
    s[0].pos = p0, s[1].pos = p1, s[2].pos = p2, s[3].pos = p3;
    s[0].out = o0, s[1].out = o1, s[2].out = o2, s[3].out = o3;
  }
  for (int i = 0; i < count; ++i) {
    Substream& t = s[i];
    while (t.out < t.out_end) {
      t.refill();
      const DecodeEntry& d = dt[t.buf & kLookupMask];
      if (d.count == 0) return bad("a group stream holds bits that are no code");
      // Whole entries while they fit, then one symbol at a time.
      const bool whole = t.out + d.count <= t.out_end;
      const int take = whole ? d.count : 1;
      const int bits = whole ? d.bits : d.first_len;
      std::memcpy(t.out, d.h, static_cast<std::size_t>(take));
      if (t.out[take - 1] == kEscapeMark &&
          !escapes.add(i, static_cast<std::uint64_t>(t.out + take - 1 - h_base))) {
        return bad("more escape symbols than escapes");
      }
      t.out += take;
      t.buf >>= bits;
      t.avail -= bits;
    }
  }
  return Status::ok();
}

}  // namespace

Status cal_decode(std::span<const std::byte> side, std::span<const std::byte> codes,
                  const Calibration& calibration, const TensorView& out, std::uint64_t first,
                  std::uint64_t n) {
  AGP_RETURN_IF_ERROR(calibration.validate());
  AGP_RETURN_IF_ERROR(out.validate());
  const std::uint32_t dim = calibration.dim;
  if (out.dim() != dim) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector length differs from the calibration's");
  }
  if (n == 0 || first > out.vector_count() || n > out.vector_count() - first) {
    return make_error(ErrorCode::kInvalidArgument, "calibrated codec: vector range out of bounds");
  }
  const std::size_t groups = calibration.group_count();
  if (side.size() != cal_side_bytes(groups)) {
    return bad("side data of " + std::to_string(side.size()) + " bytes, the calibration's groups need " +
               std::to_string(cal_side_bytes(groups)));
  }
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
  std::vector<std::uint64_t> group_offset(groups, 0);
  std::uint64_t offset = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    const std::byte* e = side.data() + kSideHeader + kSidePerGroup * g;
    const auto mode = static_cast<std::uint8_t>(e[0]);
    const int k = static_cast<int>(e[1]);
    const int table = get_u16(e + 2);
    const std::uint64_t m = calibration.group_end(g) - calibration.group_starts[g];
    if (mode > 1) return bad("group mode out of range");
    std::uint64_t streams = 0;
    for (int i = 0; i < kSubstreams; ++i) {
      const std::uint64_t bytes = get_u32(e + 4 + 4 * i);
      const std::uint64_t values = (substream_start(n, i + 1) - substream_start(n, i)) * m;
      // Every symbol takes 1..kMaxCodeBits bits.
      if (mode == 1 && (bytes < (values + 7) / 8 || bytes > (values * kMaxCodeBits + 7) / 8)) {
        return bad("a substream's length is impossible for its values");
      }
      if (mode == 0 && bytes != 0) return bad("a zero group carries fields");
      streams += bytes;
    }
    if (mode == 0) {
      if (k != 0 || table != 0) return bad("a zero group carries fields");
      continue;
    }
    if (k > kMaxRawBits || !table_fits(table, k)) return bad("group raw bits or table out of range");
    group_offset[g] = offset;
    offset += streams + raw_bytes(n * m, k);
  }
  if (escape_count > n * dim) return bad("more escapes than values");
  if (offset + 4 * escape_count != codes.size()) {
    return bad("codes section of " + std::to_string(codes.size()) + " bytes, the side data describes " +
               std::to_string(offset + 4 * escape_count));
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(codes.data());
  const std::uint8_t* escape_data = bytes + offset;
  std::uint64_t next_escape = 0;

  // Every group's symbols first (h for the whole chunk, one byte per value, and the escapes);
  // then tiles of rows: each group's levels into the tile, then mean + step * level over whole
  // rows, converted and stored straight into the caller's rows when they are contiguous f16 or
  // f32 (else through a whole-chunk array and the generic writer).
  struct GroupState {
    int k = 0, table = 0;
    bool coded = false;
    std::int8_t* h = nullptr;  // n * m symbols (+ 8 slack) in the thread's buffer
    std::vector<std::pair<std::uint64_t, std::int32_t>> escaped;  // increasing positions
    std::size_t next = 0;                                         // the first not yet placed
    const std::uint8_t* raw = nullptr;                            // after the substreams
  };
  std::vector<GroupState> gs(groups);
  // The symbols of every coded group, in one buffer kept per thread between calls (its size is
  // bounded by the codes: every symbol takes at least a bit).
  thread_local std::vector<std::int8_t> h_all;
  std::uint64_t h_need = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    if (static_cast<std::uint8_t>(side[kSideHeader + kSidePerGroup * g]) == 1) {
      h_need += n * (calibration.group_end(g) - calibration.group_starts[g]) + 8;
    }
  }
  if (h_all.size() > 4 * h_need + (std::uint64_t{16} << 20)) std::vector<std::int8_t>().swap(h_all);
  if (h_all.size() < h_need) h_all.resize(h_need);  // (one huge chunk is not kept for good)
  std::uint64_t h_used = 0;
  std::vector<std::uint64_t> escape_at[kSubstreams];
  for (std::size_t g = 0; g < groups; ++g) {
    const std::uint32_t m = calibration.group_end(g) - calibration.group_starts[g];
    const std::byte* e = side.data() + kSideHeader + kSidePerGroup * g;
    GroupState& st = gs[g];
    st.coded = static_cast<std::uint8_t>(e[0]) == 1;
    if (!st.coded) continue;
    st.k = static_cast<int>(e[1]);
    st.table = get_u16(e + 2);
    const std::uint64_t values = n * m;
    st.h = h_all.data() + h_used;
    h_used += values + 8;
    Substream s[kSubstreams];
    const std::uint8_t* p = bytes + group_offset[g];
    for (int i = 0; i < kSubstreams; ++i) {
      const std::uint64_t len = get_u32(e + 4 + 4 * i);
      s[i] = Substream{p, len, 0, 0, 0, st.h + substream_start(n, i) * m,
                       st.h + substream_start(n, i + 1) * m};
      p += len;
      escape_at[i].clear();
    }
    st.raw = p;
    EscapeSink sink{escape_at, escape_count - next_escape};
    AGP_RETURN_IF_ERROR(decode_substreams(s, kSubstreams, decode_table(st.table), st.h, sink));
    for (int i = 0; i < kSubstreams; ++i) {
      const std::uint64_t used = s[i].bits_used();
      const std::uint64_t len = s[i].len;
      if ((used + 7) / 8 != len) return bad("a group stream's length does not match its symbols");
      if (used % 8 && (s[i].begin[len - 1] >> (used % 8)) != 0) return bad("nonzero padding bits after a group stream");
    }
    // Escapes in stream order (substream by substream: increasing positions).
    for (int i = 0; i < kSubstreams; ++i) {
      for (std::uint64_t at : escape_at[i]) {
        if (next_escape >= escape_count) return bad("more escape symbols than escapes");
        std::int32_t hv;
        std::memcpy(&hv, escape_data + 4 * next_escape++, 4);
        if (hv >= -kMaxH && hv <= kMaxH && encode_table(st.table).len[hv + kMaxH]) {
          return bad("an escape carries a value that has a code");
        }
        const std::int64_t level = static_cast<std::int64_t>(hv) * (std::int64_t{1} << st.k);
        if (level >= kMaxLevel || level <= -kMaxLevel) return bad("an escape value out of range");
        st.escaped.emplace_back(at, hv);
      }
    }
  }
  if (next_escape != escape_count) return bad("fewer escape symbols than escapes");

  // Memory stays proportional to the codes (h) and a tile, never to the tensor: a small chunk of
  // zero groups cannot make a receiver allocate more than its output.
  const bool direct = contiguous_rows(out) && (out.dtype == DType::kF16 || out.dtype == DType::kF32);
  const VectorAccess access(out);
  constexpr std::uint64_t kTile = 32;  // rows: a tile's values of a group start on an 8-value block
  constexpr std::uint64_t kLanes = simd::kTileLanes;
  std::vector<float> rows_buf(kTile * dim);
  std::vector<std::int32_t> r;
  std::vector<std::uint8_t> r8;
  for (std::uint64_t v0 = 0; v0 < n; v0 += kTile) {
    const std::uint64_t rows = std::min(kTile, n - v0);
    float* tile = rows_buf.data();
    for (std::size_t g = 0; g < groups; ++g) {
      const std::uint32_t a = calibration.group_starts[g], m = calibration.group_end(g) - a;
      GroupState& st = gs[g];
      const std::uint64_t off = v0 * m, cnt = rows * m;
      // Each row's m levels go straight into the tile; an escape at symbol `at` of the group is
      // row (at - off) / m, column a + (at - off) % m.
      auto cell = [&](std::uint64_t at) { return tile + (at - off) / m * dim + a + (at - off) % m; };
      if (!st.coded) {
        for (std::uint64_t q = 0; q < rows; ++q) std::fill_n(tile + q * dim + a, m, 0.0f);
      } else if (st.k == 0) {
        // The table's reconstruction points (an escape's marker reads index 31, then is set).
        const float* recon = round_recon(st.table);
        simd::recon_levels(st.h + off, rows, m, recon, tile + a, dim);
        for (; st.next < st.escaped.size() && st.escaped[st.next].first < off + cnt; ++st.next) {
          *cell(st.escaped[st.next].first) = static_cast<float>(st.escaped[st.next].second);
        }
      } else {
        // level = h * 2^k + r, an exact integer (|level| < 2^29), then f32.
        const std::uint8_t* planes = st.raw + off / 8 * static_cast<std::uint64_t>(st.k);
        if (st.k <= 8) {
          r8.resize(cnt + 8);
          if (!unpack_raw8(planes, cnt, st.k, r8.data())) return bad("nonzero padding bits after a group's raw bits");
          // Escapes: their h goes in as 0, their level is set after.
          std::size_t first_escape = st.next;
          for (; st.next < st.escaped.size() && st.escaped[st.next].first < off + cnt; ++st.next) st.h[st.escaped[st.next].first] = 0;
          simd::shift_add_levels_u8(st.h + off, r8.data(), rows, m, st.k, tile + a, dim);
          for (; first_escape < st.next; ++first_escape) {
            const std::uint64_t at = st.escaped[first_escape].first;
            *cell(at) = static_cast<float>(static_cast<std::int32_t>(static_cast<std::uint32_t>(st.escaped[first_escape].second) << st.k) + r8[at - off]);
          }
        } else {
          r.resize(cnt + 8);
          if (!unpack_raw(planes, cnt, st.k, r.data())) return bad("nonzero padding bits after a group's raw bits");
          for (; st.next < st.escaped.size() && st.escaped[st.next].first < off + cnt; ++st.next) {
            const std::uint64_t at = st.escaped[st.next].first;
            r[at - off] += static_cast<std::int32_t>(static_cast<std::uint32_t>(st.escaped[st.next].second) << st.k);
            st.h[at] = 0;
          }
          simd::shift_add_levels(st.h + off, r.data(), rows, m, st.k, tile + a, dim);
        }
      }
    }
    // Channels-first tiles of 16 vectors (f16 or f32): dequantized and transposed in one pass.
    std::uint64_t lane_done = 0;
    if (!direct) {
      for (; lane_done + kLanes <= rows; lane_done += kLanes) {
        const auto lanes = access.lane_rows(first + v0 + lane_done, kLanes);
        if (!lanes) break;
        simd::rows_to_lanes(tile + lane_done * dim, dim, calibration.mean.data(), step, lanes->base, lanes->f16,
                            lanes->stride);
      }
    }
    for (std::uint64_t q = lane_done; q < rows; ++q) {
      float* row = tile + q * dim;
      const std::uint64_t v = first + v0 + q;
      if (!direct) {
        simd::dequantize_levels(row, dim, calibration.mean.data(), step, row);
      } else if (out.dtype == DType::kF32) {
        simd::dequantize_levels(row, dim, calibration.mean.data(), step, reinterpret_cast<float*>(out.data) + v * dim);
      } else {
        simd::dequantize_to_f16(row, dim, calibration.mean.data(), step, reinterpret_cast<std::uint16_t*>(out.data) + v * dim);
      }
    }
    if (!direct && lane_done < rows) {  // other dtypes and layouts
      access.scatter(first + v0 + lane_done, rows - lane_done, tile + lane_done * dim);
    }
  }
  return Status::ok();
}

}  // namespace agp::codec
