#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string_view>

#include <unistd.h>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "sample_messages.hpp"

namespace agp::ptp {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

TEST(Checksum, MatchesPublishedXxh3Vectors) {
  // Empty input: XXH3_64bits("") and XXH3_128bits("") with seed 0, from the xxHash test suite.
  EXPECT_EQ(xxh3_64({}), 0x2D06800538D394C2ull);
  const Hash128 h = xxh3_128({});
  EXPECT_EQ(h.lo, 0x6001C324468D497Full);
  EXPECT_EQ(h.hi, 0x99AA06D3014798D8ull);
}

TEST(Checksum, StreamingEqualsOneShot) {
  const auto data = test::pattern_bytes(100'003, 9);
  for (std::size_t split : {std::size_t{0}, std::size_t{1}, std::size_t{240}, std::size_t{65536}}) {
    Xxh3Stream64 s64;
    Xxh3Stream128 s128;
    s64.update(std::span(data).first(split));
    s64.update(std::span(data).subspan(split));
    s128.update(std::span(data).first(split));
    s128.update(std::span(data).subspan(split));
    EXPECT_EQ(s64.digest(), xxh3_64(data));
    EXPECT_EQ(s128.digest(), xxh3_128(data));
  }
}

FingerprintInput base_input(std::span<const std::byte> digest) {
  return {"devmodel", digest, 2, 384, DType::kF16, 1};
}

TEST(Fingerprint, StableAndSensitiveToEveryField) {
  const auto digest = test::pattern_bytes(16, 77);
  const Hash128 fp = model_fingerprint(base_input(digest));
  EXPECT_EQ(fp, model_fingerprint(base_input(digest)));

  auto differs = [&](FingerprintInput in) { return model_fingerprint(in) != fp; };
  auto in = base_input(digest);
  in.model_id = "devmodel2";
  EXPECT_TRUE(differs(in));
  in = base_input(digest);
  in.split_layer = 3;
  EXPECT_TRUE(differs(in));
  in = base_input(digest);
  in.hidden_size = 385;
  EXPECT_TRUE(differs(in));
  in = base_input(digest);
  in.dtype = DType::kBF16;
  EXPECT_TRUE(differs(in));
  in = base_input(digest);
  in.codec_family_version = 2;
  EXPECT_TRUE(differs(in));
  const auto other = test::pattern_bytes(16, 78);
  in = base_input(other);
  EXPECT_TRUE(differs(in));
  // Length prefixes keep field boundaries: moving a byte between fields changes the result.
  FingerprintInput a{"ab", bytes_of("c"), 2, 384, DType::kF16, 1};
  FingerprintInput b{"a", bytes_of("bc"), 2, 384, DType::kF16, 1};
  EXPECT_NE(model_fingerprint(a), model_fingerprint(b));
}

TEST(Fingerprint, GoldenValueOfTheCanonicalEncoding) {
  // Pinned so that a change to the canonical encoding cannot pass unnoticed: two builds that
  // disagree here would reject each other's packets. Regenerate only with a format version bump.
  const FingerprintInput in{"devmodel", bytes_of("weights-digest"), 2, 384, DType::kF16, 1};
  // Computed independently from the spec with python3-xxhash (docs/ptp_format.md shows how).
  EXPECT_EQ(to_hex(model_fingerprint(in)), "beb057a317373a54621040913c334ec0");
}

TEST(Fingerprint, CheckpointDirectoryDigestCoversConfigAndEveryWeightFile) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("agp-fp-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "mymodel");
  const auto model = (dir / "mymodel").string();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(model + "/" + name, std::ios::binary) << text;
  };
  write("config.json", "{\"hidden_size\": 8}");
  write("model-00001.safetensors", "first shard");
  write("model-00002.safetensors", "second shard");
  write("README.md", "not part of the digest");
  auto a = checkpoint_fingerprint(model, 2, 8);
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ(*checkpoint_fingerprint(model + "/", 2, 8), *a);  // same directory, other spelling
  EXPECT_EQ(checkpoint_model_id(model + "/"), "mymodel");
  EXPECT_NE(*checkpoint_fingerprint(model, 3, 8), *a);
  EXPECT_NE(*checkpoint_fingerprint(model, 2, 16), *a);
  write("README.md", "edited");
  EXPECT_EQ(*checkpoint_fingerprint(model, 2, 8), *a);
  write("model-00002.safetensors", "second shard, retrained");
  const auto b = checkpoint_fingerprint(model, 2, 8);
  EXPECT_NE(*b, *a);
  write("config.json", "{\"hidden_size\": 8, \"rope_theta\": 1e6}");
  EXPECT_NE(*checkpoint_fingerprint(model, 2, 8), *b);
  std::filesystem::remove(model + "/config.json");
  EXPECT_EQ(checkpoint_fingerprint(model, 2, 8).status().code(), ErrorCode::kIoError);
  EXPECT_EQ(checkpoint_fingerprint((dir / "absent").string(), 2, 8).status().code(),
            ErrorCode::kIoError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace agp::ptp
