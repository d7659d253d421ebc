// Every message kind survives build -> bytes -> decode, through the one-shot parser and through the
// push decoder fed in every way a transport might feed it.
#include <gtest/gtest.h>

#include <cstring>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "sample_messages.hpp"

namespace agp::ptp {
namespace {

using test::build_frame;
using test::sample_messages;

// The header we expect back: what the builder filled in.
MessageHeader built_header(const test::SampleMessage& m) {
  FrameBuilder b;
  const auto inputs = m.inputs();
  auto g = b.build(m.header, inputs);
  EXPECT_TRUE(g) << g.status().to_string();
  return b.last_header();
}

void expect_sections_equal(const test::SampleMessage& m, const MessageHeader& h,
                           std::span<const std::byte> body) {
  ASSERT_EQ(h.sections.size(), m.section_bytes.size());
  for (std::size_t i = 0; i < h.sections.size(); ++i) {
    const auto got = section_bytes(h, body, i);
    ASSERT_EQ(got.size(), m.section_bytes[i].size());
    EXPECT_EQ(0, std::memcmp(got.data(), m.section_bytes[i].data(), got.size()));
    EXPECT_EQ(h.sections[i].kind, m.section_kinds[i]);
  }
}

class RoundTrip : public ::testing::TestWithParam<test::SampleMessage> {};

TEST_P(RoundTrip, ParseFrameGivesBackEveryField) {
  const auto& m = GetParam();
  const auto frame = build_frame(m);
  auto v = parse_frame(frame);
  ASSERT_TRUE(v) << v.status().to_string();
  EXPECT_EQ(v->header, built_header(m));
  EXPECT_EQ(v->frame_bytes, frame.size());
  EXPECT_EQ(frame.size() % 64, 0u);
  expect_sections_equal(m, v->header, v->body);
}

TEST_P(RoundTrip, PushDecoderAcceptsAnyChunking) {
  const auto& m = GetParam();
  const auto frame = build_frame(m);
  for (std::size_t step :
       {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{4093}, frame.size()}) {
    FrameDecoder d;
    std::size_t pos = 0;
    while (pos < frame.size()) {
      const std::size_t n = std::min(step, frame.size() - pos);
      auto used = d.consume(std::span(frame).subspan(pos, n));
      ASSERT_TRUE(used) << used.status().to_string();
      ASSERT_EQ(*used, n);
      pos += n;
      if (pos < frame.size()) {
        ASSERT_FALSE(d.frame_ready()) << "ready early at " << pos;
      }
    }
    ASSERT_TRUE(d.frame_ready()) << "step " << step;
    EXPECT_EQ(d.next_required_size(), 0u);
    Frame f = d.take_frame();
    EXPECT_EQ(f.header(), built_header(m));
    expect_sections_equal(m, f.header(), f.body());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.body().data()) % 64, 0u);
    EXPECT_EQ(d.state(), FrameDecoder::State::kPrefix);
  }
}

TEST_P(RoundTrip, ZeroCopyPrepareCommit) {
  const auto& m = GetParam();
  const auto frame = build_frame(m);
  FrameDecoder d;
  std::size_t pos = 0;
  int rounds = 0;
  while (!d.frame_ready()) {
    ASSERT_LT(++rounds, 10);
    auto dst = d.prepare();
    ASSERT_EQ(dst.size(), d.next_required_size());
    ASSERT_LE(pos + dst.size(), frame.size());
    std::memcpy(dst.data(), frame.data() + pos, dst.size());
    pos += dst.size();
    ASSERT_TRUE(d.commit(dst.size()));
  }
  EXPECT_EQ(pos, frame.size());
  EXPECT_EQ(d.take_frame().header(), built_header(m));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, RoundTrip, ::testing::ValuesIn(sample_messages()),
                         [](const auto& p) { return p.param.name; });

TEST(FrameDecoder, NextRequiredSizeWalksPrefixHeaderBody) {
  const auto m = sample_messages()[0];
  const auto frame = build_frame(m);
  FrameDecoder d;
  EXPECT_EQ(d.next_required_size(), kPrefixSize);
  ASSERT_TRUE(d.consume(std::span(frame).first(kPrefixSize)));
  EXPECT_EQ(d.state(), FrameDecoder::State::kHeader);
  const std::size_t header_len = d.next_required_size();
  EXPECT_EQ((kPrefixSize + header_len) % 64, 0u);
  ASSERT_TRUE(d.consume(std::span(frame).subspan(kPrefixSize, header_len)));
  EXPECT_EQ(d.state(), FrameDecoder::State::kBody);
  EXPECT_EQ(d.next_required_size(), frame.size() - kPrefixSize - header_len);
}

TEST(FrameDecoder, BackToBackFramesInOneBuffer) {
  std::vector<std::byte> stream;
  const auto msgs = sample_messages();
  for (const auto& m : msgs) {
    const auto f = build_frame(m);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameDecoder d;
  std::size_t pos = 0;
  std::vector<MessageKind> kinds;
  while (pos < stream.size()) {
    auto used = d.consume(std::span(stream).subspan(pos));
    ASSERT_TRUE(used) << used.status().to_string();
    pos += *used;
    ASSERT_TRUE(d.frame_ready());
    kinds.push_back(d.take_frame().header().kind);
  }
  ASSERT_EQ(kinds.size(), msgs.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) EXPECT_EQ(kinds[i], msgs[i].header.kind);
  EXPECT_EQ(d.frames_decoded(), msgs.size());
}

TEST(FrameBuilder, GatherListReferencesCallerBytesWithoutCopy) {
  const auto m = sample_messages()[0];
  const auto inputs = m.inputs();
  FrameBuilder b;
  auto g = b.build(m.header, inputs);
  ASSERT_TRUE(g);
  // head, codes (163840 is a multiple of 64: no pad), norms, norms padding? 512 is aligned too.
  ASSERT_EQ(g->pieces.size(), 3u);
  EXPECT_EQ(g->pieces[1].data(), m.section_bytes[0].data());
  EXPECT_EQ(g->pieces[2].data(), m.section_bytes[1].data());
  std::uint64_t sum = 0;
  for (const auto& p : g->pieces) sum += p.size();
  EXPECT_EQ(sum, g->total_bytes);
}

TEST(FrameBuilder, OutputIsDeterministic) {
  for (const auto& m : sample_messages()) EXPECT_EQ(build_frame(m), build_frame(m)) << m.name;
}

TEST(FrameBuilder, PrecomputedChecksumIsUsed) {
  auto m = sample_messages()[1];
  auto inputs = m.inputs();
  inputs[0].checksum = 0x1234;  // a wrong one: the receiver must catch it
  FrameBuilder b;
  auto g = b.build(m.header, inputs);
  ASSERT_TRUE(g);
  EXPECT_EQ(b.last_header().sections[0].checksum, 0x1234u);
  auto v = parse_frame(g->flatten());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.status().code(), ErrorCode::kSectionChecksumMismatch);
}

TEST(FrameBuilder, RefusesHeadersAReceiverWouldReject) {
  auto m = sample_messages()[0];
  m.header.tensor->shape = {1, 0, 1, 256};
  FrameBuilder b;
  const auto inputs = m.inputs();
  auto g = b.build(m.header, inputs);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.status().code(), ErrorCode::kBadTensorDescriptor);
}

TEST(FrameBuilder, BodyOverTheBuilderCapIsRefused) {
  auto m = sample_messages()[0];
  DecoderLimits lim;
  lim.max_body_bytes = 4096;
  FrameBuilder b(lim);
  const auto inputs = m.inputs();
  auto g = b.build(m.header, inputs);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.status().code(), ErrorCode::kBodyTooLarge);
}

TEST(ParseFrame, IgnoresTrailingBytesAndHandlesMisalignedInput) {
  const auto m = sample_messages()[2];
  const auto frame = build_frame(m);
  std::vector<std::byte> buf(frame.size() + 3 + 10);
  std::memcpy(buf.data() + 3, frame.data(), frame.size());  // misaligned start
  auto v = parse_frame(std::span(buf).subspan(3));
  ASSERT_TRUE(v) << v.status().to_string();
  EXPECT_EQ(v->frame_bytes, frame.size());
  EXPECT_EQ(v->header.hello->peer_name, "mac4");
}

}  // namespace
}  // namespace agp::ptp
