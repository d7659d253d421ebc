// Builds frames: writes the prefix and header, and hands out a gather list for the body so tensor
// bytes are never copied (the transport writes the pieces with one scatter/gather call).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "agp/ptp/frame_format.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

struct SectionInput {
  SectionKind kind = SectionKind::kRaw;
  std::span<const std::byte> bytes;
  // XXH3-64 of `bytes` when the caller already has it (for example computed while encoding);
  // computed by the builder otherwise.
  std::optional<std::uint64_t> checksum;
};

// The pieces of one frame in wire order: prefix + header region, then each section followed by its
// zero padding. Spans point into the builder (prefix, header, padding) and into the caller's
// section buffers; they stay valid until the next build() on the same builder.
struct GatherList {
  std::vector<std::span<const std::byte>> pieces;
  std::uint64_t total_bytes = 0;
  // The frame as one contiguous buffer (for files, tests and fuzz corpora).
  std::vector<std::byte> flatten() const;
};

class FrameBuilder {
 public:
  explicit FrameBuilder(DecoderLimits limits = {});
  ~FrameBuilder();
  FrameBuilder(FrameBuilder&&) noexcept;
  FrameBuilder& operator=(FrameBuilder&&) noexcept;

  // Lays out `sections` in order, fills the header's section table and body length (the values
  // in `header.sections`/`header.body_length` are ignored), checks the result with
  // validate_header() against this builder's limits, and encodes it. Errors are those a receiver
  // with the same limits would report.
  Result<GatherList> build(const MessageHeader& header, std::span<const SectionInput> sections);

  // The header as last built, with its section table and body length filled in.
  const MessageHeader& last_header() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agp::ptp
