#include "agp/ptp/fingerprint.hpp"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/mapped_file.hpp"

namespace agp::ptp {
namespace {

void append_le(std::vector<std::byte>& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

void append_blob(std::vector<std::byte>& out, std::span<const std::byte> b) {
  append_le(out, b.size(), 8);
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace

Hash128 model_fingerprint(const FingerprintInput& in) {
  static constexpr std::string_view kTag = "agp-ptp-fingerprint-v1";
  std::vector<std::byte> buf;
  buf.reserve(64 + in.model_id.size() + in.weights_digest.size());
  append_blob(buf, std::as_bytes(std::span(kTag.data(), kTag.size())));
  append_blob(buf, std::as_bytes(std::span(in.model_id.data(), in.model_id.size())));
  append_blob(buf, in.weights_digest);
  append_le(buf, static_cast<std::uint32_t>(in.split_layer), 4);
  append_le(buf, in.hidden_size, 8);
  append_le(buf, static_cast<std::uint8_t>(in.dtype), 1);
  append_le(buf, in.codec_family_version, 4);
  if (in.calibration_id != 0) append_le(buf, in.calibration_id, 8);  // absent: as before
  return xxh3_128(buf);
}

std::string checkpoint_model_id(const std::string& dir) {
  std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();  // a trailing slash
  return path.filename().string();
}

Result<Hash128> checkpoint_fingerprint(const std::string& dir, std::int32_t split_layer,
                                       std::uint64_t hidden_size, DType dtype,
                                       std::uint64_t calibration_id) {
  std::vector<std::string> files = {dir + "/config.json"};
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  }
  if (ec) return make_error(ErrorCode::kIoError, "cannot list " + dir + ": " + ec.message());
  std::sort(files.begin() + 1, files.end());
  Xxh3Stream64 digest;
  for (const auto& f : files) {
    auto mapped = MappedFile::open(f);
    if (!mapped) return mapped.status();
    digest.update(mapped->bytes());
  }
  const std::uint64_t d = digest.digest();
  const std::string id = checkpoint_model_id(dir);
  return model_fingerprint(
      {id, std::as_bytes(std::span(&d, 1)), split_layer, hidden_size, dtype, 1, calibration_id});
}

}  // namespace agp::ptp
