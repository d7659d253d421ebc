// The handshake's messages and checks (internal). See docs/transport.md for the exchange:
//   client -> server  hello        versions, capabilities, nonce, session id, resume positions
//   server -> client  hello_reply  chosen version, capabilities, nonce, server proof, resume
//   positions with a key:  client -> server hello (proof flag) with the client proof; server ->
//   client ack
#pragma once

#include <cstdint>
#include <memory>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/message.hpp"
#include "agp/transport/link.hpp"
#include "outgoing_frame.hpp"

namespace agp::transport::detail {

// HelloDesc.flags bits.
inline constexpr std::uint64_t kFlagChunking = 1;    // this end assembles chunked packets
inline constexpr std::uint64_t kFlagKey = 2;         // this end authenticates with a key
inline constexpr std::uint64_t kFlagProof = 4;       // this hello carries the client's proof
inline constexpr std::uint64_t kFlagNewSession = 8;  // reply: the server did not know the session
inline constexpr std::uint64_t kFlagJoin = 16;       // this hello adds a stream to a session
inline constexpr std::uint16_t kMaxStreams = 8;
inline constexpr int kMaxEncodeThreads = 16;  // LinkOptions::encode_threads is clamped to 1..16
inline constexpr int kMaxDecodeThreads = 16;  // LinkOptions::decode_threads likewise

// Limits while the peer is unknown: no body, a small header.
ptp::DecoderOptions handshake_decoder(const LinkOptions& o);
// Limits and fingerprint once the handshake passed.
ptp::DecoderOptions session_decoder(const LinkOptions& o);

// The capabilities part of a hello: codecs this build decodes and their bit widths, frame cap.
ptp::HelloDesc capabilities(const LinkOptions& o);

// Header fields every message of a link carries (fingerprint, model id, split layer).
ptp::MessageHeader base_header(const LinkOptions& o, ptp::MessageKind kind);

// The highest protocol version both ranges contain, or 0.
std::uint16_t common_protocol(const ptp::HelloDesc& peer);

// Failures that retrying cannot help: version, fingerprint, key and capabilities in the
// handshake, and any error found in a frame after its checksums passed (a refused packet).
bool is_permanent(ErrorCode code);

// Control frames, copied so they can wait in a queue.
std::shared_ptr<OutgoingFrame> control_frame(ptp::FrameBuilder& builder, ptp::MessageHeader h);
std::shared_ptr<OutgoingFrame> error_frame(ptp::FrameBuilder& builder, const LinkOptions& o,
                                           const Status& why);

// Whether the peer's hello lists `codec` with `bits` (bits 0 = any).
bool peer_supports(const ptp::HelloDesc& peer, CodecId codec, unsigned bits);

}  // namespace agp::transport::detail
