// Byte layout constants of a PTP frame and the limits a receiver enforces (docs/ptp_format.md).
//
//   offset 0   prefix (24 bytes, little-endian)
//                0  magic "AGPP"
//                4  u16 format version (kFormatVersion)
//                6  u16 flags (must be 0)
//                8  u32 header_length: bytes of the header region
//               12  u32 reserved (must be 0)
//               16  u64 header checksum: XXH3-64 of prefix bytes [0,16) followed by the header
//               region
//   offset 24  header region: FlatBuffers `Header` (schemas/ptp.fbs), zero-padded so that
//              24 + header_length is a multiple of 64
//   then       body: sections packed in table order, each at a 64-byte aligned offset, zero padding
//              between them and after the last one up to body_length (a multiple of 64)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "agp/ptp/message.hpp"

namespace agp::ptp {

inline constexpr std::array<std::byte, 4> kMagic = {std::byte{'A'}, std::byte{'G'}, std::byte{'P'},
                                                    std::byte{'P'}};
inline constexpr std::size_t kPrefixSize = 24;
inline constexpr std::size_t kBodyAlignment = 64;
// The smallest header region that can hold a FlatBuffer root (24 + 40 = 64).
inline constexpr std::uint32_t kMinHeaderLength = 40;

// Rounds v up to a multiple of `align` (a power of two); nullopt on overflow.
constexpr std::optional<std::uint64_t> align_up(std::uint64_t v, std::uint64_t align) {
  const std::uint64_t mask = align - 1;
  if (v > UINT64_MAX - mask) return std::nullopt;
  return (v + mask) & ~mask;
}

struct FramePrefix {
  std::uint16_t format_version = kFormatVersion;
  std::uint16_t flags = 0;
  std::uint32_t header_length = 0;
  std::uint32_t reserved = 0;
  std::uint64_t header_checksum = 0;
};

// What a receiver accepts. Every cap is checked before the memory it guards is allocated.
struct DecoderLimits {
  std::uint32_t max_header_bytes = 64 * 1024;
  std::uint64_t max_body_bytes = std::uint64_t{1} << 30;  // 1 GiB
  std::uint32_t max_sections = 64;
  std::uint32_t max_verifier_depth = 16;
  std::uint32_t max_verifier_tables = 1024;
  std::uint32_t max_string_bytes = 4096;     // model id, tensor name, error message, peer name
  std::uint32_t max_vector_elements = 4096;  // codec list, nonce, auth tag
  // A tensor packet's whole tensor (element count x dtype size): a receiver sizes its output
  // buffer from the descriptor, so a small frame must not be able to claim more than this.
  std::uint64_t max_tensor_bytes = std::uint64_t{1} << 30;  // 1 GiB
  // A tensor frame may decode to at most max_expansion bytes (in the tensor's dtype) per byte of
  // its body, plus expansion_slack_bytes: this bounds the memory and decode work that a received
  // byte can cost, whatever the codec (a fixed-rate codec expands at most 32x; a frame of the
  // calibrated or lossless codecs that claims a large tensor of zeros would expand without
  // bound). Senders are held to the same rule when they build a frame.
  std::uint32_t max_expansion = 256;
  std::uint64_t expansion_slack_bytes = 64 * 1024;
};

// The bytes a tensor frame decodes to (its chunk's vectors, or the whole tensor, in the tensor's
// dtype); 0 for frames without a tensor.
std::uint64_t decoded_frame_bytes(const MessageHeader& h);
// Whether `decoded` bytes may come from `wire` bytes under `limits` (overflow-safe).
bool expansion_allowed(std::uint64_t decoded, std::uint64_t wire, const DecoderLimits& limits);

struct DecoderOptions {
  DecoderLimits limits;
  // When set, tensor packets and hellos whose fingerprint differs are rejected.
  std::optional<Hash128> expected_fingerprint;
};

}  // namespace agp::ptp
