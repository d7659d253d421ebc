// The transfer-packet header as plain C++ values. FrameBuilder turns one into wire bytes and
// FrameDecoder produces one from wire bytes; FlatBuffers types never appear in the public API.
// Field meanings and units are specified in docs/ptp_format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/codec/format_ids.hpp"

namespace agp::ptp {

// Frame format version carried in the prefix (byte layout of prefix, header region and body).
inline constexpr std::uint16_t kFormatVersion = 1;
// Protocol version carried in the header (meaning of message kinds and fields).
inline constexpr std::uint16_t kProtocolVersion = 1;
// Tensor rank limit of the descriptor.
inline constexpr std::size_t kMaxRank = 8;

// Values of the enums below match schemas/ptp.fbs.
enum class MessageKind : std::uint8_t {
  kHello = 1,
  kHelloReply = 2,
  kTensorPacket = 3,
  kAck = 4,
  kHeartbeat = 5,
  kError = 6,
  kBye = 7,
};

enum class Layout : std::uint8_t {
  kUnspecified = 0,
  kBSD = 1,   // [batch, sequence, hidden]
  kBC1S = 2,  // [batch, channels, 1, sequence]: channels-first, as Apple's ANE-friendly layout
  kSD = 3,    // [sequence, hidden]
  kD = 4,     // [hidden]
  kBCS = 5,   // [batch, channels, sequence]
};

// Codec, rotation, lossless-stage and section identifiers are the codec's
// (agp/codec/format_ids.hpp).
using ::agp::CodecId;
using ::agp::LosslessKind;
using ::agp::RotationKind;
using ::agp::SectionKind;

std::string_view message_kind_name(MessageKind k);
std::string_view layout_name(Layout l);

struct Hash128 {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
};
// 32 lowercase hex digits, hi then lo.
std::string to_hex(const Hash128& h);
// 16 lowercase hex digits (checksums, calibration ids).
std::string to_hex(std::uint64_t v);

struct TensorDesc {
  std::string name;
  DType dtype = DType::kF16;         // source dtype: f32, f16 or bf16
  std::vector<std::uint64_t> shape;  // outermost first, 1..8 dims, every dim >= 1
  Layout layout = Layout::kUnspecified;
  std::uint8_t vector_axis = 0;  // the axis along which codec vectors run
  friend bool operator==(const TensorDesc&, const TensorDesc&) = default;
};

struct CodecDesc {
  CodecId codec = CodecId::kRaw;
  std::uint8_t bits = 0;  // bits per value; 0 for kRaw (the source dtype's width applies)
  RotationKind rotation = RotationKind::kNone;
  std::uint64_t rotation_seed = 0;
  std::uint32_t block_size = 0;
  std::uint16_t codebook_id = 0;
  std::uint16_t codebook_version = 0;
  DType norm_dtype = DType::kUnknown;
  LosslessKind lossless = LosslessKind::kNone;
  std::int8_t lossless_level = 0;
  std::uint64_t original_bytes = 0;  // bytes of the source tensor (or chunk) before encoding
  std::uint64_t calibration_id = 0;  // calibrated codec: the calibration it needs
  friend bool operator==(const CodecDesc&, const CodecDesc&) = default;
};

struct ChunkDesc {
  std::uint32_t index = 0;
  std::uint32_t count = 1;
  std::uint64_t vector_offset = 0;
  std::uint64_t vector_count = 0;
  friend bool operator==(const ChunkDesc&, const ChunkDesc&) = default;
};

struct HelloDesc {
  std::uint16_t min_protocol = kProtocolVersion;
  std::uint16_t max_protocol = kProtocolVersion;
  std::uint64_t max_frame_bytes = 0;
  std::uint16_t max_streams = 1;
  std::vector<std::uint16_t> codecs;
  std::uint64_t flags = 0;
  std::vector<std::uint8_t> nonce;
  std::vector<std::uint8_t> auth_tag;
  std::string peer_name;
  std::uint64_t session_id = 0;           // the connecting side's session, kept across reconnects
  std::uint64_t delivered_sequence = 0;   // highest peer sequence delivered here (0: none)
  std::uint64_t next_sequence = 0;        // first sequence this side will (re)send
  std::vector<std::uint32_t> codec_bits;  // per `codecs` entry: bit b set = b bits supported
  std::uint16_t stream_index = 0;         // 0: a session's first connection; k: joins as stream k
  friend bool operator==(const HelloDesc&, const HelloDesc&) = default;
};

struct AckDesc {
  std::uint64_t cumulative_sequence = 0;
  friend bool operator==(const AckDesc&, const AckDesc&) = default;
};

struct ErrorDesc {
  std::uint32_t code = 0;  // an agp::ErrorCode number
  std::string message;
  friend bool operator==(const ErrorDesc&, const ErrorDesc&) = default;
};

struct SectionEntry {
  SectionKind kind = SectionKind::kRaw;
  std::uint64_t offset = 0;    // from the first body byte; a multiple of 64
  std::uint64_t length = 0;    // bytes
  std::uint64_t checksum = 0;  // XXH3-64 (seed 0) of the section's bytes
  friend bool operator==(const SectionEntry&, const SectionEntry&) = default;
};

struct MessageHeader {
  std::uint16_t protocol_version = kProtocolVersion;
  MessageKind kind = MessageKind::kHeartbeat;
  std::uint32_t stream_id = 0;
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;  // sender wall clock, ns since the Unix epoch
  Hash128 fingerprint;
  std::string model_id;
  std::int32_t split_layer = -1;  // -1: not a split-model packet
  std::optional<TensorDesc> tensor;
  std::optional<CodecDesc> codec;
  std::optional<ChunkDesc> chunk;
  std::optional<HelloDesc> hello;
  std::optional<AckDesc> ack;
  std::optional<ErrorDesc> error;
  // Filled by FrameBuilder from the section bytes; set by FrameDecoder from the wire.
  std::vector<SectionEntry> sections;
  std::uint64_t body_length = 0;
  friend bool operator==(const MessageHeader&, const MessageHeader&) = default;
};

// Number of elements of a shape, or nullopt when it is empty, has a zero, or overflows 2^63.
std::optional<std::uint64_t> shape_element_count(const std::vector<std::uint64_t>& shape);

}  // namespace agp::ptp
