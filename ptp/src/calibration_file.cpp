#include "agp/ptp/calibration_file.hpp"

#include <cstring>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/validate.hpp"

namespace agp::ptp {
namespace {

constexpr char kCalMagic[8] = {'A', 'G', 'P', 'C', 'A', 'L', '\r', '\n'};
constexpr std::size_t kHeaderBytes = 24;  // magic, version, dim, groups, info bytes
constexpr std::uint64_t kMaxInfoBytes = 1u << 16;

template <typename T>
void put(std::vector<std::byte>& out, const T& v) {
  const std::size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <typename T>
T get(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

Status bad(const std::string& what) {
  return make_error(ErrorCode::kBadCalibration, "calibration file: " + what);
}

}  // namespace

std::vector<std::byte> serialize_calibration(CalibrationFile& file) {
  const codec::Calibration& c = file.calibration;
  std::vector<std::byte> out(8);
  std::memcpy(out.data(), kCalMagic, 8);
  put(out, kCalibrationVersion);
  put(out, c.dim);
  put(out, static_cast<std::uint32_t>(c.group_starts.size()));
  put(out, static_cast<std::uint32_t>(file.info.size()));
  for (float v : c.mean) put(out, v);
  for (float v : c.scale) put(out, v);
  for (std::uint32_t v : c.group_starts) put(out, v);
  const std::size_t at = out.size();
  out.resize(at + file.info.size());
  if (!file.info.empty()) std::memcpy(out.data() + at, file.info.data(), file.info.size());
  const std::uint64_t sum = xxh3_64(out);
  put(out, sum);
  file.calibration.id = sum;
  return out;
}

Result<CalibrationFile> parse_calibration(std::span<const std::byte> bytes) {
  if (bytes.size() < kHeaderBytes + 8) return bad("shorter than its header");
  if (std::memcmp(bytes.data(), kCalMagic, 8) != 0) return bad("not a calibration file (magic)");
  const auto version = get<std::uint32_t>(bytes.data() + 8);
  if (version != kCalibrationVersion) {
    return bad("version " + std::to_string(version) + ", this build reads " +
               std::to_string(kCalibrationVersion));
  }
  const std::uint64_t dim = get<std::uint32_t>(bytes.data() + 12);
  const std::uint64_t groups = get<std::uint32_t>(bytes.data() + 16);
  const std::uint64_t info_bytes = get<std::uint32_t>(bytes.data() + 20);
  if (dim == 0 || dim > kMaxCalibrationDim) return bad("dim " + std::to_string(dim) + " out of range");
  if (groups == 0 || groups > dim) return bad("group count out of range");
  if (info_bytes > kMaxInfoBytes) return bad("info text too long");
  const std::uint64_t expected = kHeaderBytes + 8 * dim + 4 * groups + info_bytes + 8;
  if (bytes.size() != expected) {
    return bad(std::to_string(bytes.size()) + " bytes, its header describes " + std::to_string(expected));
  }
  const std::uint64_t sum = get<std::uint64_t>(bytes.data() + expected - 8);
  if (xxh3_64(bytes.first(expected - 8)) != sum) return bad("checksum mismatch (damaged file)");
  CalibrationFile f;
  codec::Calibration& c = f.calibration;
  c.dim = static_cast<std::uint32_t>(dim);
  c.mean.resize(dim);
  c.scale.resize(dim);
  c.group_starts.resize(groups);
  const std::byte* p = bytes.data() + kHeaderBytes;
  std::memcpy(c.mean.data(), p, 4 * dim);
  std::memcpy(c.scale.data(), p + 4 * dim, 4 * dim);
  std::memcpy(c.group_starts.data(), p + 8 * dim, 4 * groups);
  f.info.assign(reinterpret_cast<const char*>(p + 8 * dim + 4 * groups), info_bytes);
  c.id = sum;
  const Status valid = c.validate();
  if (!valid.is_ok()) return bad(valid.message());
  if (invalid_utf8_offset(f.info) != std::string::npos) return bad("info text is not UTF-8");
  return f;
}

Result<CalibrationFile> read_calibration(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  auto parsed = parse_calibration(file->bytes());
  if (!parsed) return make_error(parsed.status().code(), path + ": " + parsed.status().message());
  return parsed;
}

Status write_calibration(const std::string& path, CalibrationFile& file) {
  const auto bytes = serialize_calibration(file);
  return write_file(path, bytes);
}

}  // namespace agp::ptp
