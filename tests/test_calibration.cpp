// Calibration files and calibrated packets: deterministic bytes, typed errors for damage, frames
// refused by a receiver holding no or another calibration, chunks decoding on their own.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"

namespace agp::ptp {
namespace {

CalibrationFile sample_file(std::uint32_t dim) {
  CalibrationFile f;
  auto& c = f.calibration;
  c.dim = dim;
  for (std::uint32_t j = 0; j < dim; ++j) {
    c.mean.push_back(0.01f * static_cast<float>(j));
    c.scale.push_back(3.0f / std::sqrt(1.0f + static_cast<float>(j)));
  }
  c.group_starts = codec::make_calibration_groups(c.scale, 1.2, 32);
  f.info = R"({"source":"test"})";
  serialize_calibration(f);
  return f;
}

TEST(CalibrationFile, RoundTripsAndIsDeterministic) {
  CalibrationFile a = sample_file(96), b = sample_file(96);
  const auto bytes = serialize_calibration(a);
  EXPECT_EQ(bytes, serialize_calibration(b));
  auto back = parse_calibration(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->calibration.mean, a.calibration.mean);
  EXPECT_EQ(back->calibration.group_starts, a.calibration.group_starts);
  EXPECT_EQ(back->calibration.id, a.calibration.id);
  EXPECT_EQ(back->info, a.info);
}

TEST(CalibrationFile, EveryDamageIsATypedError) {
  CalibrationFile a = sample_file(40);
  const auto bytes = serialize_calibration(a);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto damaged = bytes;
    damaged[i] ^= std::byte{0x01};
    EXPECT_EQ(parse_calibration(damaged).status().code(), ErrorCode::kBadCalibration) << i;
  }
  for (std::size_t n = 0; n < bytes.size(); n += 5) {
    EXPECT_EQ(parse_calibration(std::span(bytes).first(n)).status().code(),
              ErrorCode::kBadCalibration);
  }
  // A well-checksummed file whose fields break the rules (groups not increasing).
  CalibrationFile bad = a;
  bad.calibration.group_starts = {0, 5, 5};
  EXPECT_EQ(parse_calibration(serialize_calibration(bad)).status().code(), ErrorCode::kBadCalibration);
}

TEST(CalibratedPacket, NeedsTheSameCalibrationAndChunksDecodeAlone) {
  CalibrationFile f = sample_file(64);
  auto cal = std::make_shared<const codec::Calibration>(f.calibration);
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<float> x(50 * 64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = f.calibration.mean[i % 64] + g(rng) * f.calibration.scale[i % 64];
  const auto view = codec::TensorView::contiguous(x.data(), DType::kF32, {50, 64}, 1);
  auto pc = parse_packet_codec("cal4", DType::kF32);
  ASSERT_TRUE(pc.is_ok());
  pc->calibration = cal;
  pc->cal.reserved_bytes = 0;
  TensorPacketWriter writer(*pc);
  std::vector<float> y(x.size(), 0.0f);
  const auto out = codec::TensorView::contiguous(y.data(), DType::kF32, {50, 64}, 1);
  const std::uint64_t offsets[] = {0, 17, 33};
  const std::uint64_t counts[] = {17, 16, 17};
  std::vector<std::vector<std::byte>> frames;
  for (int k = 0; k < 3; ++k) {
    auto gl = writer.write_chunk(view, MessageHeader{}, Layout::kSD,
                                 ChunkDesc{static_cast<std::uint32_t>(k), 3, offsets[k], counts[k]});
    ASSERT_TRUE(gl.is_ok()) << gl.status().message();
    frames.push_back(gl->flatten());
  }
  // Last chunk first: each decodes on its own.
  TensorPacketReader reader;
  reader.set_calibration(cal);
  for (int k = 2; k >= 0; --k) {
    auto frame = parse_frame(frames[k]);
    ASSERT_TRUE(frame.is_ok());
    EXPECT_EQ(frame->header.codec->calibration_id, cal->id);
    ASSERT_TRUE(reader.read(frame->header, frame->body, out).is_ok());
  }
  double e = 0, s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    e += (x[i] - y[i]) * (x[i] - y[i]);
    s += (x[i] - f.calibration.mean[i % 64]) * (x[i] - f.calibration.mean[i % 64]);
  }
  EXPECT_LT(e / s, 0.08);  // 17-vector chunks: side data takes a good part of 4 bits
  // No calibration, or another one: refused before decoding, naming both.
  auto frame = parse_frame(frames[0]);
  TensorPacketReader none;
  const Status s1 = none.verify(frame->header);
  EXPECT_EQ(s1.code(), ErrorCode::kBadCodecDescriptor);
  EXPECT_NE(s1.message().find("holds none"), std::string::npos) << s1.message();
  CalibrationFile other = sample_file(64);
  other.info = "other";
  serialize_calibration(other);
  TensorPacketReader wrong;
  wrong.set_calibration(std::make_shared<const codec::Calibration>(other.calibration));
  const Status s2 = wrong.verify(frame->header);
  EXPECT_EQ(s2.code(), ErrorCode::kBadCodecDescriptor);
  EXPECT_NE(s2.message().find("needs calibration"), std::string::npos) << s2.message();
  // Writing without a calibration is the caller's error.
  auto bare = parse_packet_codec("cal4", DType::kF32);
  TensorPacketWriter bare_writer(*bare);
  EXPECT_EQ(bare_writer.write(view, MessageHeader{}, Layout::kSD).status().code(),
            ErrorCode::kInvalidArgument);
}


}  // namespace
}  // namespace agp::ptp
