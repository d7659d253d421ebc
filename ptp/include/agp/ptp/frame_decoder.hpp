// Decoding frames: a push decoder that a transport drives with whatever bytes arrive, and a
// one-shot parser for a frame already in memory. Both verify everything before handing anything
// out: prefix, caps, header checksum, FlatBuffers Verifier, header rules, section checksums and
// padding, and optionally the model fingerprint.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "agp/ptp/aligned_buffer.hpp"
#include "agp/ptp/frame_format.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

// Bytes of section `i` of a body described by `header`. Precondition: i < header.sections.size()
// and the header was verified against this body.
std::span<const std::byte> section_bytes(const MessageHeader& header,
                                         std::span<const std::byte> body, std::size_t i);

// A verified frame that owns its body (64-byte aligned).
class Frame {
 public:
  Frame() = default;
  Frame(MessageHeader header, AlignedBuffer body, std::size_t frame_bytes = 0)
      : header_(std::move(header)), body_(std::move(body)), frame_bytes_(frame_bytes) {}
  const MessageHeader& header() const { return header_; }
  std::span<const std::byte> body() const { return body_.span(); }
  std::span<const std::byte> section(std::size_t i) const {
    return section_bytes(header_, body(), i);
  }
  // The first section of `kind`, or an empty span when there is none.
  std::span<const std::byte> find_section(SectionKind kind) const;
  // Bytes the frame took on the wire (prefix + header region + body); 0 if not known.
  std::size_t frame_bytes() const { return frame_bytes_; }
  // Takes the body's buffer (for FrameDecoder::recycle); the frame is empty afterwards.
  AlignedBuffer release_body() { return std::move(body_); }

 private:
  MessageHeader header_;
  AlignedBuffer body_;
  std::size_t frame_bytes_ = 0;
};

// A verified frame inside a caller's buffer (no copy of the body).
struct FrameView {
  MessageHeader header;
  std::span<const std::byte> body;
  std::size_t frame_bytes = 0;  // prefix + header region + body
  std::span<const std::byte> section(std::size_t i) const { return section_bytes(header, body, i); }
};

// Parses and verifies the frame at the start of `bytes` (trailing bytes are left alone; see
// frame_bytes). kTruncated when `bytes` ends before the frame does.
Result<FrameView> parse_frame(std::span<const std::byte> bytes, const DecoderOptions& opts = {});

// A frame as a tool shows it (ptp-inspect): prefix and header are verified as a decoder would
// (their errors are returned), while each section's checksum and padding are reported rather than
// refused, with the first failure in `body`.
struct SectionCheck {
  SectionEntry entry;
  std::uint64_t actual_checksum = 0;
  bool checksum_ok = false;
  bool padding_ok = false;
};
struct FrameInspection {
  FramePrefix prefix;
  MessageHeader header;
  std::vector<SectionCheck> sections;
  std::size_t frame_bytes = 0;
  Status body;  // ok, or the first section or padding failure
};
Result<FrameInspection> inspect_frame(std::span<const std::byte> bytes,
                                      const DecoderOptions& opts = {});

class FrameDecoder {
 public:
  enum class State { kPrefix, kHeader, kBody, kFrameReady, kFailed };

  explicit FrameDecoder(DecoderOptions opts = {});

  State state() const { return state_; }
  // Bytes still needed to finish the current stage (prefix, header or body); 0 when a frame is
  // ready or the decoder failed. Never more than the caps allow.
  std::size_t next_required_size() const;

  // Zero-copy feeding: prepare() is the writable area for the current stage
  // (next_required_size() bytes); write up to that many bytes into it, then commit(n).
  std::span<std::byte> prepare();
  Status commit(std::size_t n);

  // Copying feeding: takes bytes from `data` up to the end of the current frame and returns how
  // many it used; the rest belongs to the next frame (call again after take_frame()).
  Result<std::size_t> consume(std::span<const std::byte> data);

  bool frame_ready() const { return state_ == State::kFrameReady; }
  // Hands out the verified frame and starts on the next one. Precondition: frame_ready().
  Frame take_frame();

  // The error that put the decoder in kFailed (a stream cannot be resynchronised; reset() starts
  // over, for example on a new connection).
  const Status& error() const { return error_; }
  void reset();

  // Gives back the body of a frame the caller is done with (Frame::release_body), to hold the next
  // body of at most its size without a fresh allocation (and its page faults). One is kept, the
  // largest; a buffer more than 4 times larger than a body is not used for it.
  void recycle(AlignedBuffer body);

  // Counters for the transport's statistics.
  std::uint64_t frames_decoded() const { return frames_decoded_; }

 private:
  Status advance();  // runs the checks of a completed stage
  Status fail(Status s);

  DecoderOptions opts_;
  State state_ = State::kPrefix;
  std::size_t filled_ = 0;  // bytes of the current stage received so far
  std::byte prefix_bytes_[kPrefixSize] = {};
  FramePrefix prefix_;
  AlignedBuffer header_region_;  // reused across frames; grows to the largest header seen
  MessageHeader header_;
  AlignedBuffer body_;
  AlignedBuffer spare_;  // a recycled body
  Status error_;
  std::uint64_t frames_decoded_ = 0;
};

}  // namespace agp::ptp
