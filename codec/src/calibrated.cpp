// The calibrated codec's pieces shared by its encoder and decoder: the calibration's rules,
// component groups, side data size, raw bit planes.
#include "agp/codec/calibrated.hpp"

#include <array>
#include <cmath>
#include <cstring>

#include "cal_format.hpp"

namespace agp::codec {

Status Calibration::validate() const {
  auto bad = [](const char* what) {
    return make_error(ErrorCode::kInvalidArgument, std::string("calibration: ") + what);
  };
  if (dim == 0 || dim > (1u << 24)) return bad("dim out of range");
  if (mean.size() != dim || scale.size() != dim) return bad("mean and scale must have dim values");
  for (std::uint32_t i = 0; i < dim; ++i) {
    if (!std::isfinite(mean[i]) || !std::isfinite(scale[i]) || scale[i] < 0) {
      return bad("non-finite mean or scale");
    }
    // Beyond this the codec's float arithmetic overflows (a sum of squares over the vector).
    if (std::abs(mean[i]) > kMaxCalibrationMagnitude || scale[i] > kMaxCalibrationMagnitude) {
      return bad("a mean or scale above 1e16: no model state is that large, and the codec's "
                 "float arithmetic would overflow");
    }
  }
  if (group_starts.size() > kMaxCalibrationGroups) return bad("more than 256 groups");
  if (group_starts.empty() || group_starts[0] != 0) return bad("the first group must start at 0");
  for (std::size_t g = 1; g < group_starts.size(); ++g) {
    if (group_starts[g] <= group_starts[g - 1] || group_starts[g] >= dim) {
      return bad("group starts must increase below dim");
    }
  }
  return Status::ok();
}

std::vector<std::uint32_t> make_calibration_groups(std::span<const float> scale, double ratio,
                                                   std::size_t max_groups) {
  if (!(ratio >= 1.0)) ratio = 1.0;  // below 1 (or NaN) every component is its own group anyway
  if (!std::isfinite(ratio)) ratio = 1e300;
  for (;; ratio *= std::sqrt(2.0)) {
    std::vector<std::uint32_t> starts;
    std::size_t start = 0;
    for (std::size_t c = 0; c < scale.size(); ++c) {
      if (c == 0 || static_cast<double>(scale[start]) > ratio * static_cast<double>(scale[c])) {
        start = c;
        starts.push_back(static_cast<std::uint32_t>(c));
      }
    }
    if (starts.size() <= max_groups || max_groups == 0) return starts;
  }
}

std::uint64_t cal_side_bytes(std::size_t groups) {
  return cal::kSideHeader + cal::kSidePerGroup * groups;
}

Result<CalSideSummary> cal_side_summary(std::span<const std::byte> side) {
  if (side.size() < cal::kSideHeader) {
    return make_error(ErrorCode::kBadEncodedData, "calibrated codec: side data too short");
  }
  CalSideSummary s;
  std::memcpy(&s.step, side.data(), 4);
  s.calibration_id = cal::get_u64(side.data() + 4);
  s.vectors = cal::get_u32(side.data() + 12);
  return s;
}

namespace cal {
namespace {

// spread[b]: byte i = bit i of b (eight 0/1 bytes).
const std::uint64_t* spread_table() {
  static const auto t = [] {
    std::array<std::uint64_t, 256> s{};
    for (unsigned b = 0; b < 256; ++b) {
      for (unsigned i = 0; i < 8; ++i) s[b] |= static_cast<std::uint64_t>((b >> i) & 1u) << (8 * i);
    }
    return s;
  }();
  return t.data();
}

}  // namespace

bool contiguous_rows(const TensorView& v) {
  if (v.vector_axis + 1 != v.shape.size() || v.strides.back() != 1) return false;
  std::int64_t stride = static_cast<std::int64_t>(v.shape.back());
  for (std::size_t i = v.shape.size() - 1; i-- > 0;) {
    if (v.shape[i] != 1 && v.strides[i] != stride) return false;
    stride *= static_cast<std::int64_t>(v.shape[i]);
  }
  return true;
}

void pack_raw(const std::int32_t* q, std::uint64_t values, int k, std::uint8_t* out) {
  const auto mask = static_cast<std::uint32_t>((std::uint64_t{1} << k) - 1);
  constexpr std::uint64_t kLow = 0x0101010101010101ull;
  // Gathers bit 8i of a word to bit 56 + i (no two partial products meet).
  constexpr std::uint64_t kGather = 0x0102040810204080ull;
  const int parts = (k + 7) / 8;
  std::uint64_t b = 0;
  if (k <= 8) {
    // Whole blocks of values with at most 8 raw bits: their low bytes, one per value, as a word.
    for (; b + 1 <= values / 8; ++b) {
      std::uint8_t low[8];
      for (int i = 0; i < 8; ++i) low[i] = static_cast<std::uint8_t>(q[b * 8 + static_cast<std::uint64_t>(i)]);
      std::uint64_t part;
      std::memcpy(&part, low, 8);  // little-endian: byte i is value 8b + i
      std::uint8_t* planes = out + b * static_cast<std::uint64_t>(k);
      for (int p = 0; p < k; ++p) planes[p] = static_cast<std::uint8_t>((((part >> p) & kLow) * kGather) >> 56);
    }
  }
  for (; b * 8 < values; ++b) {
    std::uint64_t part[3] = {0, 0, 0};  // bytes i of the eight values' bits 0-7, 8-15, 16-23
    const std::uint64_t in_block = std::min<std::uint64_t>(8, values - b * 8);
    for (int w = 0; w < parts; ++w) {
      for (std::uint64_t i = 0; i < in_block; ++i) {
        const std::uint32_t r = static_cast<std::uint32_t>(q[b * 8 + i]) & mask;
        part[w] |= static_cast<std::uint64_t>((r >> (8 * w)) & 0xff) << (8 * i);
      }
    }
    std::uint8_t* planes = out + b * static_cast<std::uint64_t>(k);
    for (int p = 0; p < k; ++p) {
      const std::uint64_t bits = (part[p >> 3] >> (p & 7)) & kLow;
      planes[p] = static_cast<std::uint8_t>((bits * kGather) >> 56);
    }
  }
}

bool unpack_raw8(const std::uint8_t* in, std::uint64_t values, int k, std::uint8_t* r) {
  const std::uint64_t* spread = spread_table();
  const std::uint64_t blocks = (values + 7) / 8;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* planes = in + b * static_cast<std::uint64_t>(k);
    std::uint64_t part = 0;  // byte i: value i's bits
    for (int p = 0; p < k; ++p) part |= spread[planes[p]] << p;
    std::memcpy(r + b * 8, &part, 8);  // little-endian: byte i is value 8b + i
  }
  for (std::uint64_t i = values; i < blocks * 8; ++i) {
    if (r[i] != 0) return false;
  }
  return true;
}

bool unpack_raw(const std::uint8_t* in, std::uint64_t values, int k, std::int32_t* r) {
  const std::uint64_t* spread = spread_table();
  const std::uint64_t blocks = (values + 7) / 8;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* planes = in + b * static_cast<std::uint64_t>(k);
    std::uint64_t part[3] = {0, 0, 0};  // bits 0-7, 8-15, 16-23 of the eight values, a byte each
    for (int p = 0; p < k; ++p) part[p >> 3] |= spread[planes[p]] << (p & 7);
    for (unsigned i = 0; i < 8; ++i) {
      r[b * 8 + i] = static_cast<std::int32_t>(((part[0] >> (8 * i)) & 0xff) |
                                               (((part[1] >> (8 * i)) & 0xff) << 8) |
                                               (((part[2] >> (8 * i)) & 0xff) << 16));
    }
  }
  for (std::uint64_t i = values; i < blocks * 8; ++i) {
    if (r[i] != 0) return false;
  }
  return true;
}

}  // namespace cal
}  // namespace agp::codec
