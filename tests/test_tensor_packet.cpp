// Tensor packets end to end in memory: encode + frame, verify, decode into the host's buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/packet_codecs.hpp"
#include "agp/ptp/tensor_packet.hpp"

namespace agp::ptp {
namespace {

struct Case {
  const char* name;
  PacketCodec codec;
  double max_rel_error;
};

std::vector<Case> cases() {
  auto cfg = [](CodecId id, int bits) {
    PacketCodec c;
    c.config.id = id;
    c.config.bits = bits;
    c.config.raw_dtype = DType::kF16;
    return c;
  };
  PacketCodec ec4 = cfg(CodecId::kTurboQuantEc, 4);
  ec4.ec.bits_per_value = 4.0;
  ec4.ec.reserved_bytes = 0;
  PacketCodec ec8 = cfg(CodecId::kTurboQuantEc, 8);
  ec8.ec.fixed_bits = 8;
  return {{"raw", cfg(CodecId::kRaw, 0), 0.0},
          {"tq4", cfg(CodecId::kTurboQuantMse, 4), 0.012},
          {"tq8", cfg(CodecId::kTurboQuantMse, 8), 6e-5},
          {"prod4", cfg(CodecId::kTurboQuantProd, 4), 0.03},
          {"int8", cfg(CodecId::kBlockAbsmaxInt8, 8), 6e-5},
          {"int4", cfg(CodecId::kBlockAbsmax4, 4), 0.013},
          {"ec4", ec4, 0.02},  // a small packet: side data takes a larger share of the budget
          {"ec8", ec8, 6e-5}};
}

TEST(TensorPacket, EveryCodecRoundTripsThroughAFrame) {
  const std::uint64_t C = 384, S = 96;
  std::vector<std::uint16_t> x(C * S);
  std::uint64_t s = 9;
  for (auto& v : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = f32_to_f16(static_cast<float>(static_cast<std::int64_t>(s >> 40) % 2001 - 1000) / 400.0f);
  }
  const auto in = codec::TensorView::contiguous(x.data(), DType::kF16, {1, C, 1, S}, 1);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    TensorPacketWriter writer(c.codec);
    MessageHeader h;
    h.sequence = 5;
    h.model_id = "m";
    auto g = writer.write(in, h, Layout::kBC1S);
    ASSERT_TRUE(g) << g.status().to_string();
    const auto frame = g->flatten();
    auto v = parse_frame(frame);
    ASSERT_TRUE(v) << v.status().to_string();
    EXPECT_EQ(v->header.codec->codec, c.codec.config.id);
    EXPECT_EQ(v->header.tensor->layout, Layout::kBC1S);
    EXPECT_EQ(v->header.codec->original_bytes, C * S * 2);
    std::vector<std::uint16_t> y(x.size());
    const auto out = codec::TensorView::contiguous(y.data(), DType::kF16, {1, C, 1, S}, 1);
    ASSERT_TRUE(read_tensor_packet(v->header, v->body, out));
    double e = 0, n = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double a = f16_to_f32(x[i]), b = f16_to_f32(y[i]);
      e += (a - b) * (a - b);
      n += a * a;
    }
    EXPECT_LE(e / n, c.max_rel_error);
    if (c.max_rel_error == 0) {
      EXPECT_EQ(x, y);
    }
  }
}

TEST(TensorPacket, EveryShortCodecNameComesBackFromItsDescriptor) {
  std::vector<std::string> names = {"raw", "int8", "int4"};
  for (int b = 1; b <= 8; ++b) names.push_back("tq" + std::to_string(b));
  for (int b = 2; b <= 8; ++b) names.push_back("prod" + std::to_string(b));
  for (int b = 2; b <= 8; ++b) names.push_back("ec" + std::to_string(b));
  for (const auto& name : names) {
    auto c = parse_packet_codec(name, DType::kF16);
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(packet_codec_name(describe_codec(*c, 1024)), name);
  }
  CodecDesc unknown;
  unknown.codec = CodecId::kUnknown;
  EXPECT_EQ(packet_codec_name(unknown), "");
}

TEST(TensorPacket, MismatchesAreReported) {
  std::vector<float> x(64 * 8, 0.5f);
  const auto in = codec::TensorView::contiguous(x.data(), DType::kF32, {8, 64}, 1);
  PacketCodec pc;
  pc.config.bits = 4;
  TensorPacketWriter writer(pc);
  auto g = writer.write(in, MessageHeader{}, Layout::kSD);
  ASSERT_TRUE(g);
  const auto frame = g->flatten();
  auto v = parse_frame(frame);
  ASSERT_TRUE(v);
  std::vector<float> y(64 * 8);
  EXPECT_EQ(read_tensor_packet(v->header, v->body,
                               codec::TensorView::contiguous(y.data(), DType::kF32, {4, 128}, 1))
                .code(),
            ErrorCode::kInvalidArgument);
  MessageHeader h = v->header;
  h.codec->codebook_version = 2;
  EXPECT_EQ(read_tensor_packet(h, v->body,
                               codec::TensorView::contiguous(y.data(), DType::kF32, {8, 64}, 1))
                .code(),
            ErrorCode::kBadCodecDescriptor);
  PacketCodec raw;
  raw.config.id = CodecId::kRaw;
  raw.config.raw_dtype = DType::kF16;
  TensorPacketWriter raw_writer(raw);
  EXPECT_EQ(raw_writer.write(in, MessageHeader{}, Layout::kSD).status().code(),
            ErrorCode::kInvalidArgument);  // raw packets carry the tensor's own dtype
}

// TurboQuant-EC's descriptor and side data must tell the same story: lossless with the mode, and
// in mode 1 the width.
TEST(TensorPacket, EcDescriptorsThatContradictTheSideDataAreRefused) {
  std::vector<float> x(256 * 64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  const auto in = codec::TensorView::contiguous(x.data(), DType::kF32, {256, 64}, 1);
  std::vector<float> y(x.size());
  const auto out = codec::TensorView::contiguous(y.data(), DType::kF32, {256, 64}, 1);
  for (const char* name : {"ec4", "ec8"}) {
    SCOPED_TRACE(name);
    TensorPacketWriter w(*parse_packet_codec(name, DType::kF32));
    auto g = w.write(in, MessageHeader{}, Layout::kSD);
    ASSERT_TRUE(g) << g.status().to_string();
    const auto frame = g->flatten();
    auto v = parse_frame(frame);
    ASSERT_TRUE(v);
    ASSERT_TRUE(read_tensor_packet(v->header, v->body, out));
    MessageHeader h = v->header;
    h.codec->lossless =
        h.codec->lossless == LosslessKind::kZstd ? LosslessKind::kNone : LosslessKind::kZstd;
    EXPECT_EQ(read_tensor_packet(h, v->body, out).code(), ErrorCode::kBadCodecDescriptor);
    if (std::string(name) == "ec8") {
      h = v->header;
      h.codec->bits = 7;
      EXPECT_EQ(read_tensor_packet(h, v->body, out).code(), ErrorCode::kBadCodecDescriptor);
    }
  }
}

// The registry is the one list of codecs: every entry's names parse, describe and come back, its
// widths are ones the handshake offers, and nothing outside it passes the frame layer.
TEST(PacketCodecRegistry, EveryEntryIsConsistent) {
  unsigned last_id = 0;
  for (const PacketCodecEntry& e : packet_codec_entries()) {
    SCOPED_TRACE(std::string(e.name));
    EXPECT_GT(static_cast<unsigned>(e.id), last_id);  // sorted, unique
    last_id = static_cast<unsigned>(e.id);
    EXPECT_EQ(find_packet_codec(e.id), &e);
    EXPECT_EQ(TensorPacketWriter::chunkable(e.id), e.chunkable);
    ASSERT_NE(e.coder, nullptr);
    std::vector<std::string> names;
    if (e.max_bits == 0) {
      names.push_back(std::string(e.name));
    } else {
      for (int b = e.min_bits; b <= e.max_bits; ++b) {
        names.push_back(std::string(e.name) + std::to_string(b));
      }
      EXPECT_FALSE(parse_packet_codec(std::string(e.name) + std::to_string(e.max_bits + 1), DType::kF16));
    }
    for (const std::string& name : names) {
      auto c = parse_packet_codec(name, DType::kF16);
      ASSERT_TRUE(c) << name << ": " << c.status().to_string();
      EXPECT_EQ(c->config.id, e.id);
      const CodecDesc d = describe_codec(*c, 0);
      EXPECT_EQ(packet_codec_name(d), name);
      if (e.decodable_bits != 0) {
        EXPECT_TRUE(e.decodable_bits >> d.bits & 1u) << name;
      }
      auto back = codec_from_desc(d, DType::kF16);
      EXPECT_TRUE(back) << name << ": " << back.status().to_string();
    }
    EXPECT_NE(packet_codec_names().find(std::string(e.name)), std::string::npos);
  }
  CodecDesc unknown;
  unknown.codec = static_cast<CodecId>(last_id + 1);
  EXPECT_EQ(codec_from_desc(unknown, DType::kF16).status().code(), ErrorCode::kBadCodecDescriptor);
  EXPECT_EQ(parse_packet_codec("tq", DType::kF16).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(parse_packet_codec("tq04", DType::kF16));
  EXPECT_FALSE(parse_packet_codec("int", DType::kF16));
}

}  // namespace
}  // namespace agp::ptp
