#include "agp/ptp/frame_decoder.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/validate.hpp"
#include "header_codec.hpp"
#include "prefix_codec.hpp"

namespace agp::ptp {
namespace {

// Section checksums and the zero padding after each section.
Status verify_body(const MessageHeader& h, std::span<const std::byte> body) {
  for (std::size_t i = 0; i < h.sections.size(); ++i) {
    const SectionEntry& s = h.sections[i];
    const std::uint64_t sum = xxh3_64(body.subspan(s.offset, s.length));
    if (sum != s.checksum) {
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "section %zu (%s, %llu bytes): XXH3-64 is %016llx, the header says %016llx", i,
                    std::string(section_kind_name(s.kind)).c_str(),
                    static_cast<unsigned long long>(s.length), static_cast<unsigned long long>(sum),
                    static_cast<unsigned long long>(s.checksum));
      return make_error(ErrorCode::kSectionChecksumMismatch, buf);
    }
    const std::uint64_t pad_end =
        i + 1 < h.sections.size() ? h.sections[i + 1].offset : h.body_length;
    for (std::uint64_t p = s.offset + s.length; p < pad_end; ++p) {
      if (body[p] != std::byte{0}) {
        return make_error(ErrorCode::kNonZeroPadding, "padding byte at body offset " +
                                                          std::to_string(p) + " after section " +
                                                          std::to_string(i) + " is not zero");
      }
    }
  }
  return {};
}

Status check_header_region(const FramePrefix& prefix, std::span<const std::byte, kPrefixSize> raw,
                           std::span<const std::byte> region, const DecoderOptions& opts,
                           MessageHeader& out) {
  const std::uint64_t sum = detail::header_checksum(raw, region);
  if (sum != prefix.header_checksum) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "header checksum is %016llx, the prefix says %016llx",
                  static_cast<unsigned long long>(sum),
                  static_cast<unsigned long long>(prefix.header_checksum));
    return make_error(ErrorCode::kHeaderChecksumMismatch, buf);
  }
  auto decoded = detail::decode_header(region, opts.limits);
  if (!decoded) return decoded.status();
  AGP_RETURN_IF_ERROR(validate_header(*decoded, opts));
  out = std::move(decoded).value();
  return {};
}

}  // namespace

std::span<const std::byte> section_bytes(const MessageHeader& header,
                                         std::span<const std::byte> body, std::size_t i) {
  const SectionEntry& s = header.sections.at(i);
  return body.subspan(s.offset, s.length);
}

std::span<const std::byte> Frame::find_section(SectionKind kind) const {
  for (std::size_t i = 0; i < header_.sections.size(); ++i) {
    if (header_.sections[i].kind == kind) return section(i);
  }
  return {};
}

Result<FrameView> parse_frame(std::span<const std::byte> bytes, const DecoderOptions& opts) {
  if (bytes.size() < kPrefixSize) {
    return make_error(ErrorCode::kTruncated, "input is " + std::to_string(bytes.size()) +
                                                 " bytes; a frame prefix needs 24");
  }
  const std::span<const std::byte, kPrefixSize> raw(bytes.data(), kPrefixSize);
  auto prefix = detail::read_prefix(raw, opts.limits);
  if (!prefix) return prefix.status();
  const std::size_t head_end = kPrefixSize + prefix->header_length;
  if (bytes.size() < head_end) {
    return make_error(ErrorCode::kTruncated, "input ends inside the header (" +
                                                 std::to_string(bytes.size()) + " of " +
                                                 std::to_string(head_end) + " bytes)");
  }
  // FlatBuffers reads scalars in place: give it an 8-byte aligned copy when the input is not.
  std::span<const std::byte> region = bytes.subspan(kPrefixSize, prefix->header_length);
  AlignedBuffer aligned;
  if (reinterpret_cast<std::uintptr_t>(region.data()) % 8 != 0) {
    aligned = AlignedBuffer(region.size());
    std::memcpy(aligned.data(), region.data(), region.size());
    region = aligned.span();
  }
  FrameView view;
  AGP_RETURN_IF_ERROR(check_header_region(*prefix, raw, region, opts, view.header));
  if (bytes.size() - head_end < view.header.body_length) {
    return make_error(ErrorCode::kTruncated,
                      "input ends inside the body (" + std::to_string(bytes.size() - head_end) +
                          " of " + std::to_string(view.header.body_length) + " bytes)");
  }
  view.body = bytes.subspan(head_end, view.header.body_length);
  AGP_RETURN_IF_ERROR(verify_body(view.header, view.body));
  view.frame_bytes = head_end + view.header.body_length;
  return view;
}

Result<FrameInspection> inspect_frame(std::span<const std::byte> bytes, const DecoderOptions& opts) {
  if (bytes.size() < kPrefixSize) {
    return make_error(ErrorCode::kTruncated, "input is " + std::to_string(bytes.size()) +
                                                 " bytes; a frame prefix needs 24");
  }
  FrameInspection out;
  const std::span<const std::byte, kPrefixSize> raw(bytes.data(), kPrefixSize);
  auto prefix = detail::read_prefix(raw, opts.limits);
  if (!prefix) return prefix.status();
  out.prefix = *prefix;
  const std::size_t head_end = kPrefixSize + prefix->header_length;
  if (bytes.size() < head_end) {
    return make_error(ErrorCode::kTruncated, "input ends inside the header");
  }
  AlignedBuffer region(prefix->header_length);
  std::memcpy(region.data(), bytes.data() + kPrefixSize, prefix->header_length);
  AGP_RETURN_IF_ERROR(check_header_region(*prefix, raw, region.span(), opts, out.header));
  if (bytes.size() - head_end < out.header.body_length) {
    return make_error(ErrorCode::kTruncated,
                      "input ends inside the body (" + std::to_string(bytes.size() - head_end) +
                          " of " + std::to_string(out.header.body_length) + " bytes)");
  }
  const auto body = bytes.subspan(head_end, out.header.body_length);
  for (std::size_t i = 0; i < out.header.sections.size(); ++i) {
    const SectionEntry& e = out.header.sections[i];
    SectionCheck c;
    c.entry = e;
    c.actual_checksum = xxh3_64(body.subspan(e.offset, e.length));
    c.checksum_ok = c.actual_checksum == e.checksum;
    const std::uint64_t pad_end =
        i + 1 < out.header.sections.size() ? out.header.sections[i + 1].offset
                                           : out.header.body_length;
    c.padding_ok = std::all_of(body.begin() + static_cast<std::ptrdiff_t>(e.offset + e.length),
                               body.begin() + static_cast<std::ptrdiff_t>(pad_end),
                               [](std::byte b) { return b == std::byte{0}; });
    out.sections.push_back(c);
  }
  out.body = verify_body(out.header, body);
  out.frame_bytes = head_end + out.header.body_length;
  return out;
}

FrameDecoder::FrameDecoder(DecoderOptions opts) : opts_(std::move(opts)) {}

void FrameDecoder::reset() {
  state_ = State::kPrefix;
  filled_ = 0;
  header_ = MessageHeader{};
  body_ = AlignedBuffer{};
  error_ = Status{};
}

std::size_t FrameDecoder::next_required_size() const {
  switch (state_) {
    case State::kPrefix:
      return kPrefixSize - filled_;
    case State::kHeader:
      return prefix_.header_length - filled_;
    case State::kBody:
      return body_.size() - filled_;
    case State::kFrameReady:
    case State::kFailed:
      return 0;
  }
  return 0;
}

std::span<std::byte> FrameDecoder::prepare() {
  const std::size_t n = next_required_size();
  switch (state_) {
    case State::kPrefix:
      return {prefix_bytes_ + filled_, n};
    case State::kHeader:
      return {header_region_.data() + filled_, n};
    case State::kBody:
      return {body_.data() + filled_, n};
    case State::kFrameReady:
    case State::kFailed:
      break;
  }
  return {};
}

Status FrameDecoder::fail(Status s) {
  state_ = State::kFailed;
  error_ = s;
  return s;
}

Status FrameDecoder::commit(std::size_t n) {
  if (state_ == State::kFailed) return error_;
  if (state_ == State::kFrameReady) {
    return make_error(ErrorCode::kBadState, "commit() while a frame is waiting for take_frame()");
  }
  if (n > next_required_size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "commit(" + std::to_string(n) + ") exceeds the " +
                          std::to_string(next_required_size()) + " bytes prepare() offered");
  }
  filled_ += n;
  // A stage may need 0 further bytes right away (an empty body): keep advancing.
  while ((state_ == State::kPrefix || state_ == State::kHeader || state_ == State::kBody) &&
         next_required_size() == 0) {
    AGP_RETURN_IF_ERROR(advance());
  }
  return {};
}

Status FrameDecoder::advance() {
  const std::span<const std::byte, kPrefixSize> raw(prefix_bytes_, kPrefixSize);
  switch (state_) {
    case State::kPrefix: {
      auto p = detail::read_prefix(raw, opts_.limits);
      if (!p) return fail(p.status());
      prefix_ = *p;
      if (header_region_.size() < prefix_.header_length) {
        header_region_ = AlignedBuffer(prefix_.header_length);
      }
      state_ = State::kHeader;
      filled_ = 0;
      return {};
    }
    case State::kHeader: {
      const std::span<const std::byte> region(header_region_.data(), prefix_.header_length);
      Status s = check_header_region(prefix_, raw, region, opts_, header_);
      if (!s) return fail(std::move(s));
      // The cap on body_length was checked by validate_header before this allocation.
      const auto need = static_cast<std::size_t>(header_.body_length);
      if (spare_.capacity() >= need && spare_.capacity() / 4 <= need && spare_.reuse_for(need)) {
        body_ = std::move(spare_);
      } else {
        body_ = AlignedBuffer(need);
      }
      state_ = State::kBody;
      filled_ = 0;
      return {};
    }
    case State::kBody: {
      Status s = verify_body(header_, body_.span());
      if (!s) return fail(std::move(s));
      state_ = State::kFrameReady;
      filled_ = 0;
      ++frames_decoded_;
      return {};
    }
    case State::kFrameReady:
    case State::kFailed:
      break;
  }
  return {};
}

Result<std::size_t> FrameDecoder::consume(std::span<const std::byte> data) {
  std::size_t used = 0;
  while (used < data.size() && state_ != State::kFrameReady) {
    if (state_ == State::kFailed) return error_;
    std::span<std::byte> dst = prepare();
    const std::size_t n = std::min(dst.size(), data.size() - used);
    if (n > 0) std::memcpy(dst.data(), data.data() + used, n);
    used += n;
    AGP_RETURN_IF_ERROR(commit(n));
  }
  if (state_ == State::kFailed) return error_;
  return used;
}

void FrameDecoder::recycle(AlignedBuffer body) {
  if (body.capacity() > spare_.capacity()) spare_ = std::move(body);
}

Frame FrameDecoder::take_frame() {
  if (state_ != State::kFrameReady) return Frame{};
  const std::size_t bytes = kPrefixSize + prefix_.header_length + body_.size();
  Frame f(std::move(header_), std::move(body_), bytes);
  header_ = MessageHeader{};
  body_ = AlignedBuffer{};
  state_ = State::kPrefix;
  filled_ = 0;
  return f;
}

}  // namespace agp::ptp
