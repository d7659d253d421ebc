// Malformed frames: each one must give its own error code, never a crash, an abort or an
// out-of-bounds read (the sanitizer lane runs these too).
#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "header_codec.hpp"
#include "prefix_codec.hpp"
#include "sample_messages.hpp"

namespace agp::ptp {
namespace {

using test::build_frame;
using test::sample_messages;

// Encodes `h` exactly as given (no validation) with a valid prefix and header checksum, followed
// by `body`. Lets a test put any value in any header field.
std::vector<std::byte> raw_frame(const MessageHeader& h, std::span<const std::byte> body) {
  flatbuffers::FlatBufferBuilder fbb;
  detail::encode_header(fbb, h);
  const std::size_t region = *align_up(kPrefixSize + fbb.GetSize(), 64) - kPrefixSize;
  std::vector<std::byte> out(kPrefixSize + region, std::byte{0});
  std::memcpy(out.data() + kPrefixSize, fbb.GetBufferPointer(), fbb.GetSize());
  FramePrefix p;
  p.header_length = static_cast<std::uint32_t>(region);
  detail::write_prefix(p, std::span<std::byte, kPrefixSize>(out.data(), kPrefixSize));
  detail::seal_header_checksum(out);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// The built header of the seed-shaped 4-bit tensor packet, and its body.
struct Valid {
  MessageHeader header;
  std::vector<std::byte> frame;
  std::vector<std::byte> body;
};

Valid valid_tensor_frame() {
  const auto m = sample_messages()[0];
  Valid v;
  v.frame = build_frame(m);
  auto parsed = parse_frame(v.frame);
  v.header = parsed->header;
  v.body.assign(parsed->body.begin(), parsed->body.end());
  return v;
}

std::size_t body_start(const Valid& v) {
  return v.frame.size() - v.body.size();
}

// Decodes with both the one-shot parser and the push decoder (fed 999 bytes at a time) and
// checks that both report `code`.
void expect_error(const std::vector<std::byte>& bytes, ErrorCode code,
                  const DecoderOptions& opts = {}) {
  auto v = parse_frame(bytes, opts);
  ASSERT_FALSE(v) << "parse_frame accepted it";
  EXPECT_EQ(v.status().code(), code) << v.status().to_string();
  EXPECT_FALSE(v.status().message().empty());

  FrameDecoder d(opts);
  Status last;
  for (std::size_t pos = 0; pos < bytes.size() && last.is_ok(); pos += 999) {
    auto used =
        d.consume(std::span(bytes).subspan(pos, std::min<std::size_t>(999, bytes.size() - pos)));
    if (!used) last = used.status();
    if (d.frame_ready()) break;
  }
  if (code == ErrorCode::kTruncated) {
    EXPECT_TRUE(last.is_ok());
    EXPECT_FALSE(d.frame_ready());
    EXPECT_GT(d.next_required_size(), 0u);
  } else {
    EXPECT_EQ(last.code(), code) << last.to_string();
    EXPECT_EQ(d.state(), FrameDecoder::State::kFailed);
    // A failed decoder stays failed.
    auto again = d.consume(std::span(bytes).first(1));
    EXPECT_FALSE(again);
  }
}

using Mutator = std::function<std::vector<std::byte>(const Valid&)>;

struct Case {
  const char* name;
  Mutator make;
  ErrorCode code;
  DecoderOptions opts{};
};

std::vector<std::byte> with_header(const Valid& v, const std::function<void(MessageHeader&)>& edit,
                                   std::vector<std::byte> body = {}) {
  MessageHeader h = v.header;
  edit(h);
  return raw_frame(h, body.empty() ? v.body : body);
}

std::vector<std::byte> poke(std::vector<std::byte> b, std::size_t at, std::uint8_t value) {
  b.at(at) = std::byte{value};
  return b;
}

std::vector<std::byte> resealed(std::vector<std::byte> b) {
  const std::size_t region_end = kPrefixSize + (std::to_integer<std::size_t>(b[8]) |
                                                (std::to_integer<std::size_t>(b[9]) << 8));
  std::vector<std::byte> head(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(region_end));
  detail::seal_header_checksum(head);
  std::copy(head.begin(), head.end(), b.begin());
  return b;
}

std::vector<Case> cases() {
  DecoderOptions small_header;
  small_header.limits.max_header_bytes = 40;
  DecoderOptions small_body;
  small_body.limits.max_body_bytes = 1024;
  DecoderOptions want_other_model;
  want_other_model.expected_fingerprint = Hash128{1, 2};
  DecoderOptions few_sections;
  few_sections.limits.max_sections = 1;

  return {
      {"wrong_magic", [](const Valid& v) { return poke(v.frame, 0, 'X'); }, ErrorCode::kBadMagic},
      {"future_format_version", [](const Valid& v) { return poke(v.frame, 4, 2); },
       ErrorCode::kUnsupportedVersion},
      {"prefix_flags_set", [](const Valid& v) { return poke(v.frame, 6, 1); },
       ErrorCode::kBadPrefix},
      {"prefix_reserved_set", [](const Valid& v) { return poke(v.frame, 13, 1); },
       ErrorCode::kBadPrefix},
      {"header_length_over_cap", [](const Valid& v) { return v.frame; }, ErrorCode::kHeaderTooLarge,
       small_header},
      {"header_length_huge", [](const Valid& v) { return poke(v.frame, 11, 0xff); },
       ErrorCode::kHeaderTooLarge},
      {"header_length_misaligned", [](const Valid& v) { return poke(v.frame, 8, 41); },
       ErrorCode::kBadPrefix},
      {"header_length_zero", [](const Valid& v) { return poke(poke(v.frame, 8, 0), 9, 0); },
       ErrorCode::kBadPrefix},
      {"header_checksum_field_wrong", [](const Valid& v) { return poke(v.frame, 16, 0x5a); },
       ErrorCode::kHeaderChecksumMismatch},
      {"header_byte_flipped",
       [](const Valid& v) {
         auto b = v.frame;
         b[40] ^= std::byte{0x10};
         return b;
       },
       ErrorCode::kHeaderChecksumMismatch},
      {"header_garbage_with_valid_checksum",
       [](const Valid& v) {
         auto b = v.frame;
         std::fill_n(b.begin() + kPrefixSize, 40, std::byte{0xee});
         return resealed(b);
       },
       ErrorCode::kHeaderInvalid},
      {"header_wrong_file_identifier",
       [](const Valid& v) { return resealed(poke(v.frame, kPrefixSize + 4, 'Z')); },
       ErrorCode::kHeaderInvalid},
      {"header_root_offset_out_of_region",
       [](const Valid& v) {
         auto b = poke(v.frame, kPrefixSize + 3, 0x7f);
         return resealed(b);
       },
       ErrorCode::kHeaderInvalid},
      {"body_length_overflow",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.body_length = UINT64_MAX - 63; });
       },
       ErrorCode::kBodyTooLarge},
      {"body_length_over_cap", [](const Valid& v) { return v.frame; }, ErrorCode::kBodyTooLarge,
       small_body},
      {"body_length_not_multiple_of_64",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.body_length += 1; }); },
       ErrorCode::kBadSectionTable},
      {"body_length_beyond_sections",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.body_length += 64; }); },
       ErrorCode::kBadSectionTable},
      {"section_out_of_bounds",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[1].length = 4096; });
       },
       ErrorCode::kSectionOutOfBounds},
      {"section_length_overflow",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[1].length = UINT64_MAX; });
       },
       ErrorCode::kSectionOutOfBounds},
      {"section_offset_misaligned",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[1].offset += 8; });
       },
       ErrorCode::kSectionMisaligned},
      {"sections_overlap",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[1].offset = 0; });
       },
       ErrorCode::kSectionMisaligned},
      {"section_kind_zero",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[0].kind = SectionKind{0}; });
       },
       ErrorCode::kBadSectionTable},
      {"too_many_sections", [](const Valid& v) { return v.frame; }, ErrorCode::kBadSectionTable,
       few_sections},
      {"codes_checksum_wrong",
       [](const Valid& v) {
         auto b = v.frame;
         b[body_start(v) + 100] ^= std::byte{1};
         return b;
       },
       ErrorCode::kSectionChecksumMismatch},
      {"norms_checksum_wrong",
       [](const Valid& v) {
         auto b = v.frame;
         b[body_start(v) + v.header.sections[1].offset + 5] ^= std::byte{0x80};
         return b;
       },
       ErrorCode::kSectionChecksumMismatch},
      {"norms_table_checksum_wrong",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.sections[1].checksum ^= 1; });
       },
       ErrorCode::kSectionChecksumMismatch},
      {"raw_section_checksum_wrong",
       [](const Valid&) {
         auto b = build_frame(sample_messages()[1]);
         b[b.size() - 64] ^= std::byte{4};  // first byte of the one 64-byte body block
         return b;
       },
       ErrorCode::kSectionChecksumMismatch},
      {"padding_not_zero",
       [](const Valid&) {
         auto b = build_frame(sample_messages()[1]);  // 42-byte raw section + 22 padding bytes
         b[b.size() - 1] = std::byte{1};
         return b;
       },
       ErrorCode::kNonZeroPadding},
      {"fingerprint_mismatch", [](const Valid& v) { return v.frame; },
       ErrorCode::kFingerprintMismatch, want_other_model},
      {"shape_has_zero",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->shape[3] = 0; });
       },
       ErrorCode::kBadTensorDescriptor},
      {"shape_overflows",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) {
           h.tensor->shape = {1ull << 32, 1ull << 32, 1, 1};
         });
       },
       ErrorCode::kBadTensorDescriptor},
      {"shape_bytes_overflow",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) {
           h.tensor->shape = {1ull << 62, 2, 1, 1}; /* 2^63 values of 2 bytes */
         });
       },
       ErrorCode::kBadTensorDescriptor},
      {"rank_nine",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) {
           h.tensor->shape.assign(9, 1);
           h.tensor->layout = Layout::kUnspecified;
         });
       },
       ErrorCode::kBadTensorDescriptor},
      {"rank_zero",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->shape.clear(); });
       },
       ErrorCode::kBadTensorDescriptor},
      {"vector_axis_out_of_range",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->vector_axis = 4; });
       },
       ErrorCode::kBadTensorDescriptor},
      {"layout_rank_mismatch",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->layout = Layout::kSD; });
       },
       ErrorCode::kBadTensorDescriptor},
      {"tensor_dtype_not_float",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->dtype = DType::kU8; });
       },
       ErrorCode::kBadTensorDescriptor},
      {"unknown_message_kind",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.kind = MessageKind{9}; });
       },
       ErrorCode::kUnknownMessageKind},
      {"future_protocol_version",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.protocol_version = 2; });
       },
       ErrorCode::kProtocolVersionMismatch},
      {"tensor_packet_without_codec",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.codec.reset(); }); },
       ErrorCode::kMissingField},
      {"ack_without_ack_field",
       [](const Valid&) {
         MessageHeader h;
         h.kind = MessageKind::kAck;
         return raw_frame(h, {});
       },
       ErrorCode::kMissingField},
      {"unknown_codec_id",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.codec->codec = CodecId{77}; });
       },
       ErrorCode::kBadCodecDescriptor},
      {"bits_out_of_range",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.codec->bits = 0; }); },
       ErrorCode::kBadCodecDescriptor},
      {"model_id_too_long",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.model_id.assign(5000, 'm'); });
       },
       ErrorCode::kHeaderInvalid},
      {"chunk_index_past_count",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.chunk->index = 1; }); },
       ErrorCode::kHeaderInvalid},
      // Strings are UTF-8: tools print them as JSON, which cannot hold other bytes.
      {"model_id_not_utf8",
       [](const Valid& v) { return with_header(v, [](MessageHeader& h) { h.model_id = "m\xff"; }); },
       ErrorCode::kHeaderInvalid},
      {"tensor_name_truncated_utf8",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->name = "caf\xc3"; });
       },
       ErrorCode::kHeaderInvalid},
      {"tensor_name_surrogate",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->name = "\xed\xa0\x80"; });
       },
       ErrorCode::kHeaderInvalid},
      {"tensor_name_overlong_slash",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->name = "\xc0\xaf"; });
       },
       ErrorCode::kHeaderInvalid},
      {"error_message_not_utf8",
       [](const Valid&) {
         MessageHeader h;
         h.kind = MessageKind::kError;
         h.error = ErrorDesc{106, "bad \x80 byte"};
         return raw_frame(h, {});
       },
       ErrorCode::kHeaderInvalid},
      {"tensor_above_max_tensor_bytes",
       [](const Valid& v) {
         return with_header(v, [](MessageHeader& h) { h.tensor->shape = {1, 1280, 1, 1u << 20}; });
       },
       ErrorCode::kBodyTooLarge},
  };
}

TEST(Malformed, EachCaseGivesItsError) {
  const Valid v = valid_tensor_frame();
  int checked = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto bytes = c.make(v);
    expect_error(bytes, c.code, c.opts);
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST(Malformed, TruncationAtEveryBoundaryIsReported) {
  for (const auto& m : sample_messages()) {
    SCOPED_TRACE(m.name);
    const auto frame = build_frame(m);
    auto parsed = parse_frame(frame);
    ASSERT_TRUE(parsed);
    const std::size_t head_end = frame.size() - parsed->body.size();
    // Every prefix byte, every header byte, the body's section boundaries and its last byte.
    std::vector<std::size_t> cuts;
    for (std::size_t k = 0; k < head_end; ++k) cuts.push_back(k);
    for (const auto& s : parsed->header.sections) {
      cuts.push_back(head_end + s.offset);
      cuts.push_back(head_end + s.offset + s.length / 2);
      cuts.push_back(head_end + s.offset + s.length);
    }
    cuts.push_back(frame.size() - 1);
    for (std::size_t k : cuts) {
      if (k >= frame.size()) continue;
      const std::vector<std::byte> cut(frame.begin(),
                                       frame.begin() + static_cast<std::ptrdiff_t>(k));
      auto r = parse_frame(cut);
      ASSERT_FALSE(r) << "accepted a frame cut at " << k;
      ASSERT_EQ(r.status().code(), ErrorCode::kTruncated)
          << "cut at " << k << ": " << r.status().to_string();
      FrameDecoder d;
      ASSERT_TRUE(d.consume(cut));
      ASSERT_FALSE(d.frame_ready());
      ASSERT_EQ(d.next_required_size() > 0, true);
    }
  }
}

TEST(Malformed, SingleBitFlipsAnywhereAreCaught) {
  // Every 97th bit of the seed-shaped frame: each flip must be rejected (checksums cover every
  // byte that is not verified to be zero padding).
  const Valid v = valid_tensor_frame();
  for (std::size_t bit = 0; bit < v.frame.size() * 8; bit += 97) {
    auto b = v.frame;
    b[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    ASSERT_FALSE(parse_frame(b)) << "bit " << bit << " flipped and the frame was accepted";
  }
}

TEST(Malformed, RandomGarbageNeverCrashes) {
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    auto g = test::pattern_bytes(64 + seed * 7, seed);
    // Half of them start with a valid magic and version to get past the first checks.
    if (seed % 2 == 0) {
      g[0] = std::byte{'A'};
      g[1] = std::byte{'G'};
      g[2] = std::byte{'P'};
      g[3] = std::byte{'P'};
      g[4] = std::byte{1};
      g[5] = std::byte{0};
    }
    EXPECT_FALSE(parse_frame(g));
  }
}

TEST(FrameDecoder, CommitMoreThanPreparedIsRefused) {
  FrameDecoder d;
  auto s = d.commit(kPrefixSize + 1);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(d.state(), FrameDecoder::State::kPrefix);  // a usage error does not poison the stream
}

TEST(FrameDecoder, ResetRecoversFromFailure) {
  const Valid v = valid_tensor_frame();
  FrameDecoder d;
  auto bad = poke(v.frame, 0, 'Z');
  EXPECT_FALSE(d.consume(bad));
  EXPECT_EQ(d.error().code(), ErrorCode::kBadMagic);
  d.reset();
  auto used = d.consume(v.frame);
  ASSERT_TRUE(used);
  EXPECT_TRUE(d.frame_ready());
}

}  // namespace
}  // namespace agp::ptp

namespace agp::ptp {
namespace {

// The expansion bound: what a body of `wire` bytes may decode to, exactly at the edge and where
// the product would overflow 64 bits.
TEST(ExpansionBound, SlackThenAFixedRatioWithoutOverflow) {
  DecoderLimits lim;
  lim.max_expansion = 256;
  lim.expansion_slack_bytes = 65536;
  EXPECT_TRUE(expansion_allowed(65536, 0, lim));
  EXPECT_FALSE(expansion_allowed(65537, 0, lim));
  EXPECT_TRUE(expansion_allowed(65536 + 256 * 1000, 1000, lim));
  EXPECT_FALSE(expansion_allowed(65536 + 256 * 1000 + 1, 1000, lim));
  EXPECT_TRUE(expansion_allowed(UINT64_MAX, UINT64_MAX / 2, lim));
  EXPECT_FALSE(expansion_allowed(UINT64_MAX, 1 << 20, lim));
  lim.max_expansion = 0;  // nothing beyond the slack
  EXPECT_FALSE(expansion_allowed(65537, UINT64_MAX, lim));
  // A chunk decodes to its own vectors, a whole packet to its tensor.
  MessageHeader h;
  h.kind = MessageKind::kTensorPacket;
  h.tensor = TensorDesc{"t", DType::kF32, {8, 100}, Layout::kSD, 1};
  EXPECT_EQ(decoded_frame_bytes(h), 8u * 100 * 4);
  h.chunk = ChunkDesc{1, 2, 4, 4};
  EXPECT_EQ(decoded_frame_bytes(h), 4u * 100 * 4);
  h.chunk->vector_count = 1000;  // a lie is capped at the tensor
  EXPECT_EQ(decoded_frame_bytes(h), 8u * 100 * 4);
}

}  // namespace
}  // namespace agp::ptp
