// Golden frames: frames written by an earlier build must still decode to the same messages, and
// (with the same FlatBuffers version) this build must produce them byte for byte. A failure here
// means the wire format changed: bump the format or protocol version and regenerate on purpose
// (command in tests/make_golden.cpp).
#include <flatbuffers/base.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "sample_messages.hpp"

namespace agp::ptp {
namespace {

std::string golden_dir() {
  return AGP_GOLDEN_DIR;
}

std::string recorded_flatbuffers_version() {
  std::ifstream in(golden_dir() + "/FLATBUFFERS_VERSION");
  std::string v;
  std::getline(in, v);
  return v;
}

std::string this_flatbuffers_version() {
  return std::to_string(FLATBUFFERS_VERSION_MAJOR) + "." +
         std::to_string(FLATBUFFERS_VERSION_MINOR) + "." +
         std::to_string(FLATBUFFERS_VERSION_REVISION);
}

class Golden : public ::testing::TestWithParam<test::SampleMessage> {};

TEST_P(Golden, DecodesToTheSampleMessage) {
  const auto& m = GetParam();
  auto file = MappedFile::open(golden_dir() + "/" + m.name + ".ptp");
  ASSERT_TRUE(file) << file.status().to_string();
  auto v = parse_frame(file->bytes());
  ASSERT_TRUE(v) << v.status().to_string();
  FrameBuilder b;
  const auto inputs = m.inputs();
  ASSERT_TRUE(b.build(m.header, inputs));
  EXPECT_EQ(v->header, b.last_header());
  EXPECT_EQ(v->frame_bytes, file->bytes().size());
}

TEST_P(Golden, BuildIsByteIdentical) {
  const auto& m = GetParam();
  if (recorded_flatbuffers_version() != this_flatbuffers_version()) {
    GTEST_SKIP() << "golden frames were written with FlatBuffers " << recorded_flatbuffers_version()
                 << ", this build uses " << this_flatbuffers_version()
                 << "; its encoder may lay the header out differently (decoding is still checked)";
  }
  auto file = MappedFile::open(golden_dir() + "/" + m.name + ".ptp");
  ASSERT_TRUE(file);
  const auto built = test::build_frame(m);
  ASSERT_EQ(built.size(), file->bytes().size());
  EXPECT_TRUE(std::equal(built.begin(), built.end(), file->bytes().begin()));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, Golden, ::testing::ValuesIn(test::sample_messages()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace agp::ptp
