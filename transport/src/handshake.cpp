#include "handshake.hpp"

#include <algorithm>

#include "agp/ptp/packet_codecs.hpp"
#include "agp/ptp/validate.hpp"

namespace agp::transport::detail {

ptp::DecoderOptions handshake_decoder(const LinkOptions& o) {
  ptp::DecoderOptions d;
  d.limits = o.limits;
  d.limits.max_header_bytes = std::min<std::uint32_t>(o.limits.max_header_bytes, 16 * 1024);
  d.limits.max_body_bytes = 0;
  d.expected_fingerprint = o.fingerprint;
  return d;
}

ptp::DecoderOptions session_decoder(const LinkOptions& o) {
  ptp::DecoderOptions d;
  d.limits = o.limits;
  d.expected_fingerprint = o.fingerprint;
  return d;
}

ptp::HelloDesc capabilities(const LinkOptions& o) {
  ptp::HelloDesc h;
  h.min_protocol = ptp::kProtocolVersion;
  h.max_protocol = ptp::kProtocolVersion;
  h.max_frame_bytes = o.limits.max_body_bytes;
  h.max_streams = std::clamp<std::uint16_t>(o.streams, 1, kMaxStreams);
  for (const ptp::PacketCodecEntry& c : ptp::packet_codec_entries()) {
    if (c.id == CodecId::kTurboQuantCal && !o.calibration) continue;  // cannot decode it
    h.codecs.push_back(static_cast<std::uint16_t>(c.id));
    h.codec_bits.push_back(c.decodable_bits);
  }
  h.flags = kFlagChunking | (o.key.empty() ? 0 : kFlagKey);
  h.peer_name = o.peer_name;
  return h;
}

ptp::MessageHeader base_header(const LinkOptions& o, ptp::MessageKind kind) {
  ptp::MessageHeader h;
  h.kind = kind;
  h.fingerprint = o.fingerprint;
  h.model_id = o.model_id;
  h.split_layer = o.split_layer;
  return h;
}

std::uint16_t common_protocol(const ptp::HelloDesc& peer) {
  const std::uint16_t lo = std::max(peer.min_protocol, ptp::kProtocolVersion);
  const std::uint16_t hi = std::min(peer.max_protocol, ptp::kProtocolVersion);
  return lo <= hi ? hi : 0;
}

bool is_permanent(ErrorCode code) {
  switch (code) {
    case ErrorCode::kFingerprintMismatch:
    case ErrorCode::kProtocolVersionMismatch:
    case ErrorCode::kAuthenticationFailed:
    case ErrorCode::kCapabilityMismatch:
    case ErrorCode::kAborted:  // the peer is gone for good
    // Found in a frame whose checksums passed: the same bytes sent again fail the same way.
    case ErrorCode::kHeaderInvalid:
    case ErrorCode::kMissingField:
    case ErrorCode::kUnknownMessageKind:
    case ErrorCode::kBodyTooLarge:
    case ErrorCode::kBadSectionTable:
    case ErrorCode::kSectionOutOfBounds:
    case ErrorCode::kSectionMisaligned:
    case ErrorCode::kBadTensorDescriptor:
    case ErrorCode::kBadCodecDescriptor:
    case ErrorCode::kBadEncodedData:
    case ErrorCode::kUnsupportedCodec:
      return true;
    default:
      // Prefix damage, checksum mismatches and non-zero padding are what a damaged connection
      // produces; timeouts and socket errors pass too. A new connection may do better.
      return false;
  }
}

std::shared_ptr<OutgoingFrame> control_frame(ptp::FrameBuilder& builder, ptp::MessageHeader h) {
  auto built = builder.build(h, {});
  if (!built) return nullptr;  // only oversized strings can fail, and ours are bounded
  return freeze_copy(*built);
}

std::shared_ptr<OutgoingFrame> error_frame(ptp::FrameBuilder& builder, const LinkOptions& o,
                                           const Status& why) {
  ptp::MessageHeader h = base_header(o, ptp::MessageKind::kError);
  // The message may quote what the peer sent: keep it valid UTF-8 and short.
  const std::string text = ptp::to_header_string(why.message(), 1024);
  h.error = ptp::ErrorDesc{static_cast<std::uint32_t>(why.code()), text};
  return control_frame(builder, std::move(h));
}

bool peer_supports(const ptp::HelloDesc& peer, CodecId codec, unsigned bits) {
  for (std::size_t i = 0; i < peer.codecs.size(); ++i) {
    if (peer.codecs[i] != static_cast<std::uint16_t>(codec)) continue;
    if (bits == 0 || i >= peer.codec_bits.size() || peer.codec_bits[i] == 0) return true;
    return bits < 32 && (peer.codec_bits[i] >> bits & 1u) != 0;
  }
  return false;
}

}  // namespace agp::transport::detail
