#include "prefix_codec.hpp"

#include <cstring>
#include <string>

#include "agp/ptp/checksum.hpp"

namespace agp::ptp::detail {
namespace {

template <typename T>
void put_le(std::byte* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<std::byte>(static_cast<std::uint64_t>(v) >> (8 * i));
  }
}

template <typename T>
T get_le(const std::byte* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= std::to_integer<std::uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

}  // namespace

void write_prefix(const FramePrefix& p, std::span<std::byte, kPrefixSize> out) {
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put_le(out.data() + 4, p.format_version);
  put_le(out.data() + 6, p.flags);
  put_le(out.data() + 8, p.header_length);
  put_le(out.data() + 12, p.reserved);
  put_le(out.data() + 16, p.header_checksum);
}

Result<FramePrefix> read_prefix(std::span<const std::byte, kPrefixSize> in,
                                const DecoderLimits& lim) {
  if (std::memcmp(in.data(), kMagic.data(), kMagic.size()) != 0) {
    return make_error(ErrorCode::kBadMagic,
                      "the frame does not start with the magic bytes \"AGPP\" (41 47 50 50)");
  }
  FramePrefix p;
  p.format_version = get_le<std::uint16_t>(in.data() + 4);
  p.flags = get_le<std::uint16_t>(in.data() + 6);
  p.header_length = get_le<std::uint32_t>(in.data() + 8);
  p.reserved = get_le<std::uint32_t>(in.data() + 12);
  p.header_checksum = get_le<std::uint64_t>(in.data() + 16);
  if (p.format_version != kFormatVersion) {
    return make_error(ErrorCode::kUnsupportedVersion,
                      "frame format version " + std::to_string(p.format_version) +
                          "; this build reads version " + std::to_string(kFormatVersion));
  }
  if (p.flags != 0 || p.reserved != 0) {
    return make_error(ErrorCode::kBadPrefix,
                      "prefix flags/reserved fields must be 0 in format version 1 (flags " +
                          std::to_string(p.flags) + ", reserved " + std::to_string(p.reserved) +
                          ")");
  }
  if (p.header_length > lim.max_header_bytes) {
    return make_error(ErrorCode::kHeaderTooLarge,
                      "header length " + std::to_string(p.header_length) +
                          " is above the receiver's cap of " +
                          std::to_string(lim.max_header_bytes) + " bytes");
  }
  if (p.header_length < kMinHeaderLength || (kPrefixSize + p.header_length) % kBodyAlignment != 0) {
    return make_error(ErrorCode::kBadPrefix,
                      "header length " + std::to_string(p.header_length) +
                          " must be at least 40 and make 24 + length a multiple of 64");
  }
  return p;
}

std::uint64_t header_checksum(std::span<const std::byte, kPrefixSize> prefix,
                              std::span<const std::byte> region) {
  Xxh3Stream64 s;
  s.update(prefix.first(16));
  s.update(region);
  return s.digest();
}

void seal_header_checksum(std::vector<std::byte>& head) {
  const std::span<std::byte, kPrefixSize> prefix(head.data(), kPrefixSize);
  const std::uint64_t sum =
      header_checksum(prefix, std::span<const std::byte>(head).subspan(kPrefixSize));
  put_le(head.data() + 16, sum);
}

}  // namespace agp::ptp::detail
