// Golden frames: frames written by an earlier build must still decode to the same messages, and
// (with the same FlatBuffers version) this build must produce them byte for byte. A failure here
// means the wire format changed: bump the format or protocol version and regenerate on purpose
// (command in tests/make_golden.cpp). The sample messages test the frame layer (their sections
// hold patterned bytes); the codec goldens (tests/golden/codec/) test every codec's encoding and
// decoding against stored tensors. The last tests pin statements of docs/ that a decoder relies
// on (codebook values, boundary rule, splitmix64 values, Hadamard blocks).
#include <flatbuffers/base.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/npy.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "codebooks.hpp"
#include "codec_goldens.hpp"
#include "rotation.hpp"
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

// ---------------------------------------------------------------- codec goldens
// tests/golden/codec/: real encodings of known tensors for every codec and bit width, with the
// source and decoded tensors beside the frames (codec_goldens.hpp, tests/golden/README.md).

namespace agp::ptp {
namespace {

std::string codec_dir() {
  return golden_dir() + "/codec";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint64_t element_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

// Entropy-coded TurboQuant-EC sizes its step against zstd's real output, so its bytes are those
// of one zstd version.
bool ec_entropy_coded(const std::string& codec) {
  return codec.rfind("ec", 0) == 0 && codec.size() == 3 && codec[2] >= '2' && codec[2] <= '6';
}

class CodecGolden : public ::testing::TestWithParam<test::GoldenPacket> {};

TEST_P(CodecGolden, SourceReencodesToTheStoredFrames) {
  const auto& p = GetParam();
  const test::GoldenTensor& t = *test::find_golden_tensor(p.tensor);
  auto src = read_npy(codec_dir() + "/" + t.name + ".npy");
  ASSERT_TRUE(src) << src.status().to_string();
  ASSERT_EQ(src->view.dtype, t.dtype);
  ASSERT_EQ(src->view.shape, t.shape);
  auto file = MappedFile::open(codec_dir() + "/" + p.stem() + ".ptp");
  ASSERT_TRUE(file) << file.status().to_string();
  if (ec_entropy_coded(p.codec) &&
      read_text(codec_dir() + "/ZSTD_VERSION") != std::string(ZSTD_versionString()) + "\n") {
    GTEST_SKIP() << "written with zstd " << read_text(codec_dir() + "/ZSTD_VERSION")
                 << "; this build has " << ZSTD_versionString()
                 << " (its step search uses zstd's coded size; decoding is still checked)";
  }
  const auto in =
      codec::TensorView::contiguous(src->view.data.data(), t.dtype, t.shape, t.vector_axis);
  auto frames = test::encode_golden(p, t, in);
  ASSERT_TRUE(frames) << frames.status().to_string();
  const auto stored = file->bytes();
  if (recorded_flatbuffers_version() == this_flatbuffers_version()) {
    ASSERT_EQ(frames->size(), stored.size());
    EXPECT_TRUE(std::equal(frames->begin(), frames->end(), stored.begin()))
        << p.stem() << ": the encoding changed";
    return;
  }
  // Another FlatBuffers may lay the header out differently: compare headers and bodies.
  std::size_t a = 0, b = 0;
  while (a < frames->size() && b < stored.size()) {
    auto fa = parse_frame(std::span(*frames).subspan(a));
    auto fb = parse_frame(stored.subspan(b));
    ASSERT_TRUE(fa && fb);
    EXPECT_EQ(fa->header, fb->header);
    EXPECT_TRUE(std::equal(fa->body.begin(), fa->body.end(), fb->body.begin(), fb->body.end()));
    a += fa->frame_bytes;
    b += fb->frame_bytes;
  }
  EXPECT_EQ(a, frames->size());
  EXPECT_EQ(b, stored.size());
}

TEST_P(CodecGolden, StoredFramesDecodeToTheStoredTensor) {
  const auto& p = GetParam();
  const test::GoldenTensor& t = *test::find_golden_tensor(p.tensor);
  auto file = MappedFile::open(codec_dir() + "/" + p.stem() + ".ptp");
  ASSERT_TRUE(file) << file.status().to_string();
  auto want = read_npy(codec_dir() + "/" + p.stem() + ".decoded.npy");
  ASSERT_TRUE(want) << want.status().to_string();
  ASSERT_EQ(want->view.dtype, DType::kF32);
  ASSERT_EQ(want->view.shape, t.shape);
  const std::uint64_t n = element_count(t.shape);
  ASSERT_EQ(want->view.data.size(), n * 4);

  // Bit for bit in f32.
  std::vector<float> got(n, std::nanf(""));
  auto frames = test::decode_golden(
      file->bytes(), t,
      codec::TensorView::contiguous(got.data(), DType::kF32, t.shape, t.vector_axis));
  ASSERT_TRUE(frames) << frames.status().to_string();
  if (p.chunk_vectors) {
    EXPECT_GT(*frames, 1u);
  } else {
    EXPECT_EQ(*frames, 1u);
  }
  EXPECT_EQ(std::memcmp(got.data(), want->view.data.data(), n * 4), 0)
      << p.stem() << ": decoding changed";

  // Decoding into the source dtype rounds those f32 values to nearest even, once.
  if (t.dtype != DType::kF32) {
    std::vector<std::uint16_t> narrow(n);
    ASSERT_TRUE(test::decode_golden(
        file->bytes(), t,
        codec::TensorView::contiguous(narrow.data(), t.dtype, t.shape, t.vector_axis)));
    std::size_t differ = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint16_t r = t.dtype == DType::kF16 ? f32_to_f16(got[i]) : f32_to_bf16(got[i]);
      differ += r != narrow[i];
    }
    EXPECT_EQ(differ, 0u) << "values decoded into " << dtype_name(t.dtype)
                          << " are not the f32 decode rounded to nearest even";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, CodecGolden, ::testing::ValuesIn(test::golden_packets()),
                         [](const auto& p) {
                           std::string s = p.param.stem();
                           std::replace(s.begin(), s.end(), '.', '_');
                           return s;
                         });

TEST(CodecGoldenSet, SourcesAreTheGeneratorsValues) {
  for (const auto& t : test::golden_tensors()) {
    auto src = read_npy(codec_dir() + "/" + t.name + ".npy");
    ASSERT_TRUE(src) << src.status().to_string();
    const auto bytes = test::golden_tensor_bytes(t);
    ASSERT_EQ(src->view.data.size(), bytes.size()) << t.name;
    EXPECT_EQ(std::memcmp(src->view.data.data(), bytes.data(), bytes.size()), 0) << t.name;
  }
}

TEST(CodecGoldenSet, CalibrationFileIsTheGeneratorsCalibration) {
  auto stored = ptp::read_calibration(codec_dir() + "/" + test::kGoldenCalibrationFile);
  ASSERT_TRUE(stored) << stored.status().to_string();
  ptp::CalibrationFile made = test::golden_calibration();
  const auto bytes = ptp::serialize_calibration(made);
  auto file = MappedFile::open(codec_dir() + "/" + test::kGoldenCalibrationFile);
  ASSERT_TRUE(file);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), file->bytes().begin(), file->bytes().end()));
  EXPECT_EQ(stored->calibration.id, made.calibration.id);
  EXPECT_GE(made.calibration.group_count(), 8u);
}

TEST(CodecGoldenSet, ManifestListsEveryFile) {
  auto m = test::golden_manifest(codec_dir());
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(*m, read_text(codec_dir() + "/manifest.tsv"))
      << "regenerate with ptp-make-golden (tests/make_golden.cpp)";
}

TEST(CodecGoldenSet, CoversEveryCodecAndWidth) {
  std::set<std::string> names;
  std::set<DType> raw_dtypes;
  bool chunked_tq4 = false;
  for (const auto& p : test::golden_packets()) {
    names.insert(p.codec);
    if (p.codec == "raw") raw_dtypes.insert(test::find_golden_tensor(p.tensor)->dtype);
    chunked_tq4 |= p.codec == "tq4" && p.chunk_vectors != 0;
  }
  for (int b = 1; b <= 8; ++b) EXPECT_TRUE(names.count("tq" + std::to_string(b))) << b;
  for (int b = 2; b <= 8; ++b) EXPECT_TRUE(names.count("prod" + std::to_string(b))) << b;
  for (int b = 2; b <= 8; ++b) EXPECT_TRUE(names.count("ec" + std::to_string(b))) << b;
  for (int b : {2, 3, 4, 8}) EXPECT_TRUE(names.count("cal" + std::to_string(b))) << b;
  EXPECT_TRUE(names.count("int8") && names.count("int4"));
  EXPECT_EQ(raw_dtypes, (std::set<DType>{DType::kF32, DType::kF16, DType::kBF16}));
  EXPECT_TRUE(chunked_tq4);
}

// ---------------------------------------------------------------- what docs/ states exactly

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// docs/codebooks.md holds the centroids the codec was compiled with, and the quantizer follows the
// boundary rule stated there.
TEST(DocumentedFormat, CodebookTablesAndBoundaryRule) {
  const std::string doc = read_text(std::string(AGP_DOCS_DIR) + "/codebooks.md");
  ASSERT_FALSE(doc.empty());
  const std::regex head(R"(^m = (\d+), b = (\d+): (\d+) centroids)");
  const std::regex cell(R"(\s*(\d+) ([0-9a-f]{8}) +\S+)");
  std::map<std::pair<int, int>, std::vector<std::uint32_t>> tables;
  std::pair<int, int> current{-1, -1};
  bool in_block = false;
  std::istringstream lines(doc);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, head)) {
      current = {std::stoi(m[1]), std::stoi(m[2])};
      continue;
    }
    if (line == "```") {
      in_block = !in_block;
      continue;
    }
    if (!in_block || current.first < 0) continue;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), cell);
         it != std::sregex_iterator(); ++it) {
      auto& t = tables[current];
      EXPECT_EQ(std::stoul((*it)[1]), t.size());
      t.push_back(static_cast<std::uint32_t>(std::stoul((*it)[2], nullptr, 16)));
    }
  }
  ASSERT_EQ(tables.size(), 14u * 8u);
  for (const auto& [key, values] : tables) {
    const auto [m, b] = key;
    SCOPED_TRACE("m=" + std::to_string(m) + " b=" + std::to_string(b));
    const codec::Codebook& cb = codec::codebook(m, b);
    ASSERT_EQ(cb.block_dim(), m);
    ASSERT_EQ(values.size(), std::size_t{1} << b);
    for (std::size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(bits_of(cb.centroids()[i]), values[i]) << "centroid " << i;
    }
    // t_i = 0.5f * (c_i + c_(i+1)); the code is the number of boundaries <= z.
    const int levels = 1 << b;
    std::vector<float> t(levels - 1);
    for (int i = 0; i + 1 < levels; ++i) {
      t[i] = 0.5f * (cb.centroids()[i] + cb.centroids()[i + 1]);
      ASSERT_EQ(bits_of(cb.boundary(i)), bits_of(t[i]));
    }
    auto rule = [&](float z) {
      return static_cast<int>(std::upper_bound(t.begin(), t.end(), z) - t.begin());
    };
    std::vector<float> probes = {0.0f, -0.0f, 1.0f, -1.0f, 1e30f, -1e30f, 1e-30f, -1e-30f};
    for (float x : t) {
      probes.push_back(x);
      probes.push_back(std::nextafter(x, -INFINITY));
      probes.push_back(std::nextafter(x, INFINITY));
    }
    for (float p = -6.0f; p <= 6.0f; p += 1.0f / 1024) probes.push_back(p);
    // Every bin edge of the encoder's lookup table, and the floats around it, too.
    const float* c = cb.centroids();
    const float span = std::max(std::abs(c[0]), std::abs(c[levels - 1])) * 1.05f + 1e-3f;
    for (int k = 0; k <= 4096; ++k) {
      const float edge = -span + static_cast<float>(k) * (2.0f * span / 4096.0f);
      float z = std::nextafter(edge, -INFINITY);
      for (int n = 0; n < 3; ++n, z = std::nextafter(z, INFINITY)) probes.push_back(z);
    }
    for (float z : probes) ASSERT_EQ(cb.quantize(z), rule(z)) << "z = " << z;
  }
}

// splitmix64 as docs/codec.md states it, with its test values.
TEST(DocumentedFormat, SplitmixSignsAndTestValues) {
  auto words = [](std::uint64_t seed, int n) {
    std::vector<std::uint64_t> w;
    std::uint64_t state = seed;
    for (int k = 0; k < n; ++k) {
      state += 0x9e3779b97f4a7c15ull;
      std::uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      w.push_back(z ^ (z >> 31));
    }
    return w;
  };
  const auto w = words(0x5eed, 3);
  EXPECT_EQ(w, (std::vector<std::uint64_t>{0x09f1fd9d03f0a9b4ull, 0x553274161bbf8475ull,
                                           0x5d5bca4696b343b3ull}));
  EXPECT_EQ(words(0x5eedull ^ 0x51ce7c4e5eedull, 1)[0], 0x26e6d069f78a92f3ull);
  EXPECT_EQ(words(0, 1)[0], 0xe220a8397b1dcdafull);
  for (std::uint64_t seed : {std::uint64_t{0x5eed}, std::uint64_t{0x51ce7c4e0000}}) {
    const auto s = codec::random_signs(200, seed);
    const auto ws = words(seed, 4);
    for (std::uint32_t i = 0; i < 200; ++i) {
      EXPECT_EQ(s[i], ((ws[i / 64] >> (i % 64)) & 1) ? -1.0f : 1.0f) << i;
    }
  }
}

TEST(DocumentedFormat, HadamardBlocks) {
  auto sizes = [](std::uint32_t dim) {
    std::vector<std::uint32_t> out;
    std::uint32_t off = 0;
    for (const codec::Block& b : codec::hadamard_blocks(dim)) {
      EXPECT_EQ(b.offset, off);
      off += b.size;
      out.push_back(b.size);
    }
    EXPECT_EQ(off, dim);
    return out;
  };
  EXPECT_EQ(sizes(7), (std::vector<std::uint32_t>{4, 2, 1}));
  EXPECT_EQ(sizes(1280), (std::vector<std::uint32_t>{1024, 256}));
  EXPECT_EQ(sizes(100), (std::vector<std::uint32_t>{64, 32, 4}));
  EXPECT_EQ(sizes(4096 * 2 + 4095 - 2048),
            (std::vector<std::uint32_t>{4096, 4096, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1}));
}

}  // namespace
}  // namespace agp::ptp
