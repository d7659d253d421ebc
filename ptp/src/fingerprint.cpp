#include "agp/ptp/fingerprint.hpp"

#include <string>
#include <vector>

#include "agp/ptp/checksum.hpp"

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
  return xxh3_128(buf);
}

}  // namespace agp::ptp
