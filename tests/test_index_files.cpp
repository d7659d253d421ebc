// Vector files for the index (JSON Lines, .npy, raw f32): every accepted row shape, bad rows named
// by line with nothing half-read, round trips; exporting an index's vectors; inspecting snapshots.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "agp/index/index.hpp"
#include "agp/index/vector_file.hpp"
#include "agp/ptp/checksum.hpp"
#include "agp/ptp/npy.hpp"

namespace agp::index {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("agp-index-files-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

Result<VectorSet> parse(const std::string& text) {
  std::istringstream in(text);
  return read_jsonl(in, "rows.jsonl");
}

TEST(IndexVectorFiles, EveryAcceptedRowShapeReads) {
  auto set = parse(
      "[1, 2, 3]\n"
      "{\"embedding\": [4, 5, 6], \"id\": \"a\"}\n"
      "\n"
      "{\"vector\": [7, 8.5, -9e-1]}\r\n"
      "{\"values\": [0, 0, 1e2]}\n"
      "  \t\n"
      "{\"embedding_vector\": [1, 1, 1], \"text\": \"header\"}\n"
      "{\"values\": [2, 2, 2], \"vector\": [3, 3, 3]}\n");
  ASSERT_TRUE(set) << set.status().to_string();
  EXPECT_EQ(set->dim, 3u);
  ASSERT_EQ(set->count(), 6u);
  const std::vector<float> want = {1, 2, 3, 4, 5, 6, 7, 8.5f, -0.9f, 0, 0, 100, 1, 1, 1, 3, 3, 3};
  EXPECT_EQ(set->values, want);  // "vector" is looked for before "values"
}

TEST(IndexVectorFiles, BadRowsAreNamedByLineAndNothingIsRead) {
  const std::pair<std::string, std::string> cases[] = {
      {"[1, 2]\n[1, 2, 3]\n", "rows.jsonl:2: 3 values, earlier rows have 2"},
      {"[1, 2]\n\n[1, \"x\"]\n", "rows.jsonl:3: the value at position 1 is not a number"},
      {"[1, 2]\n[0, 0]\n", "rows.jsonl:2: the vector is all zeros"},
      {"{\"id\": 3}\n", "rows.jsonl:1: an object without"},
      {"[1, 2\n", "rows.jsonl:1: not JSON"},
      {"\"text\"\n", "rows.jsonl:1: neither an array nor an object"},
      {"{\"embedding\": 5}\n", "rows.jsonl:1: the vector is not an array"},
      {"[]\n", "rows.jsonl:1: the vector is empty"},
      {"[1e39, 1]\n", "rows.jsonl:1: the value at position 0 is not a finite f32"},
      {"[1, 1e400]\n", "rows.jsonl:1: not JSON we can read"},
      {"[1, null]\n", "rows.jsonl:1: the value at position 1 is not a number"},
      {"\n\n", "rows.jsonl: no vectors"},
  };
  for (const auto& [text, message] : cases) {
    auto set = parse(text);
    ASSERT_FALSE(set) << text;
    EXPECT_EQ(set.status().code(), ErrorCode::kBadVectorFile) << text;
    EXPECT_NE(set.status().message().find(message), std::string::npos)
        << set.status().message() << " / want " << message;
  }
}

TEST(IndexVectorFiles, EveryFormatRoundTrips) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g;
  std::vector<float> values(7 * 24);
  for (auto& v : values) v = g(rng);
  for (const std::string ext : {".jsonl", ".npy", ".f32"}) {
    const std::string path = temp_path("round" + ext);
    auto format = vector_format_of(path);
    ASSERT_TRUE(format);
    ASSERT_TRUE(write_vectors(path, *format, values, 24));
    auto back = read_vectors(path, *format, *format == VectorFormat::kRawF32 ? 24 : 0);
    ASSERT_TRUE(back) << back.status().to_string();
    EXPECT_EQ(back->dim, 24u);
    EXPECT_EQ(back->values, values) << ext;  // 9 significant digits: f32 exactly
    std::filesystem::remove(path);
  }
  EXPECT_EQ(vector_format_of("x.csv").status().code(), ErrorCode::kInvalidArgument);
  const std::string raw = temp_path("odd.f32");
  ASSERT_TRUE(write_vectors(raw, VectorFormat::kRawF32, values, 24));
  EXPECT_EQ(read_vectors(raw, VectorFormat::kRawF32, 25).status().code(),
            ErrorCode::kBadVectorFile);
  EXPECT_EQ(read_vectors(raw, VectorFormat::kRawF32, 0).status().code(),
            ErrorCode::kInvalidArgument);
  std::filesystem::remove(raw);
  // f16 .npy reads; a 3-D or integer array does not.
  const std::string npy = temp_path("half.npy");
  const std::vector<std::uint16_t> halves = {0x3c00, 0x4000, 0xbc00, 0x3800};  // 1, 2, -1, 0.5
  ASSERT_TRUE(ptp::write_npy(npy, DType::kF16, {2, 2}, std::as_bytes(std::span(halves))));
  auto half = read_vectors(npy, VectorFormat::kNpy);
  ASSERT_TRUE(half);
  EXPECT_EQ(half->values, (std::vector<float>{1, 2, -1, 0.5f}));
  ASSERT_TRUE(ptp::write_npy(npy, DType::kF16, {1, 2, 2}, std::as_bytes(std::span(halves))));
  EXPECT_EQ(read_vectors(npy, VectorFormat::kNpy).status().code(), ErrorCode::kBadVectorFile);
  // Rows are checked as JSON Lines rows are: NaN, all zeros, none at all.
  const std::pair<std::vector<std::uint16_t>, std::string> bad_rows[] = {
      {{0x3c00, 0x3c00, 0x7e00, 0x3c00}, "row 1: the value at position 0 is not finite"},
      {{0x3c00, 0x3c00, 0x0000, 0x8000}, "row 1: the vector is all zeros"},
      {{}, "no vectors"}};
  for (const auto& [halves_bad, message] : bad_rows) {
    ASSERT_TRUE(ptp::write_npy(npy, DType::kF16, {halves_bad.size() / 2, 2},
                               std::as_bytes(std::span(halves_bad))));
    auto r = read_vectors(npy, VectorFormat::kNpy);
    ASSERT_FALSE(r) << message;
    EXPECT_EQ(r.status().code(), ErrorCode::kBadVectorFile);
    EXPECT_NE(r.status().message().find(message), std::string::npos) << r.status().message();
  }
  std::filesystem::remove(npy);
  EXPECT_EQ(read_vectors(temp_path("missing.jsonl"), VectorFormat::kJsonl).status().code(),
            ErrorCode::kIoError);
}

// Exported vectors: the exact copies when kept; otherwise the decode, close to the original.
TEST(IndexVectorFiles, ExportedVectorsAreTheStoredOnes) {
  std::mt19937_64 rng(4);
  std::normal_distribution<float> g;
  const std::uint32_t dim = 100;
  std::vector<float> values(20 * dim);
  for (auto& v : values) v = g(rng);
  for (const bool exact : {true, false}) {
    auto index = Index::create(dim, {4, 7, exact});
    ASSERT_TRUE(index);
    ASSERT_TRUE(index->add(values));
    std::vector<float> out(5 * dim);
    ASSERT_TRUE(index->vectors(10, 5, out));
    for (std::size_t i = 0; i < 5; ++i) {
      double ss = 0, dot = 0, oo = 0;
      for (std::uint32_t k = 0; k < dim; ++k) {
        const float x = values[(10 + i) * dim + k], y = out[i * dim + k];
        ss += double{x} * x, dot += double{x} * y, oo += double{y} * y;
      }
      const double cosine = dot / std::sqrt(ss * oo);
      EXPECT_NEAR(oo, 1.0, 1e-3);
      EXPECT_GT(cosine, exact ? 0.99999 : 0.99) << (exact ? "exact" : "decoded");
      // The decode's direction is the search's: the score of a vector with itself.
      auto hits = index->search(std::span(out).subspan(i * dim, dim), {1});
      ASSERT_TRUE(hits);
      if (!exact) {
        EXPECT_EQ((*hits)[0].id, 10 + i);
      }
    }
    EXPECT_EQ(index->vectors(18, 3, std::span(out).first(3 * dim)).code(),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(index->vectors(0, 5, std::span(out).first(4 * dim)).code(),
              ErrorCode::kInvalidArgument);
  }
}

TEST(IndexVectorFiles, InspectShowsSectionsAndWhatIsWrong) {
  std::vector<float> values(10 * 64, 0.5f);
  for (std::size_t i = 0; i < values.size(); i += 3) values[i] = -1;
  auto index = Index::create(64, {3});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(values));
  const std::string path = temp_path("inspect.agpidx");
  ASSERT_TRUE(index->save(path));
  auto info = Index::inspect(path);
  ASSERT_TRUE(info) << info.status().to_string();
  EXPECT_TRUE(info->status);
  EXPECT_EQ(info->version, 3u);
  EXPECT_FALSE(info->centered);  // 10 vectors: too few for a mean
  EXPECT_EQ(info->dim, 64u);
  EXPECT_EQ(info->bits, 3);
  EXPECT_EQ(info->vectors, 10u);
  EXPECT_TRUE(info->exact);
  ASSERT_EQ(info->sections.size(), 4u);
  EXPECT_EQ(info->sections[0].kind, "top_planes");
  EXPECT_EQ(info->sections[0].bytes, 10u * 8);
  EXPECT_EQ(info->sections[1].bytes, 10u * 8 * 2);
  EXPECT_EQ(info->sections[3].kind, "exact_f16");
  for (const auto& s : info->sections) EXPECT_TRUE(s.checksum_ok) << s.kind;
  // Damage the norms: inspect still describes the file and says which section is bad.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(info->sections[2].offset + 5));
    f.put('\x7f');
  }
  auto damaged = Index::inspect(path);
  ASSERT_TRUE(damaged);
  EXPECT_EQ(damaged->status.code(), ErrorCode::kSectionChecksumMismatch);
  EXPECT_TRUE(damaged->sections[0].checksum_ok);
  EXPECT_FALSE(damaged->sections[2].checksum_ok);
  // Damage confined to the fp16 copies: open leaves them to first use, inspect checks them now.
  ASSERT_TRUE(index->save(path));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(info->sections[3].offset + 7));
    f.put('\x11');
  }
  ASSERT_TRUE(Index::open(path));
  auto copies = Index::inspect(path);
  ASSERT_TRUE(copies);
  EXPECT_EQ(copies->status.code(), ErrorCode::kSectionChecksumMismatch);
  EXPECT_NE(copies->status.message().find("exact_f16"), std::string::npos);
  EXPECT_FALSE(copies->sections[3].checksum_ok);
  std::filesystem::resize_file(path, 100);
  EXPECT_EQ(Index::inspect(path).status().code(), ErrorCode::kTruncated);
  std::filesystem::remove(path);
}

// A forger's snapshot: a NaN among the fp16 copies under checksums recomputed to match. Opening
// cannot see it (the copies are checked on first use); the first rerank, vectors() and every
// later one refuse it.
TEST(IndexVectorFiles, CopiesThatAreNotFiniteAreRefusedOnFirstUse) {
  std::vector<float> values(12 * 16, 0.25f);
  for (std::size_t i = 0; i < values.size(); i += 5) values[i] = -0.5f;
  auto index = Index::create(16, {4});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(values));
  const std::string path = temp_path("forged.agpidx");
  ASSERT_TRUE(index->save(path));
  std::vector<std::byte> bytes(std::filesystem::file_size(path));
  std::ifstream(path, std::ios::binary)
      .read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::filesystem::remove(path);
  auto u64 = [&](std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, &bytes[at], 8);
    return v;
  };
  auto put64 = [&](std::size_t at, std::uint64_t v) { std::memcpy(&bytes[at], &v, 8); };
  const std::size_t entry = 48 + 3 * 32;  // the fourth section: the fp16 copies
  const std::uint64_t offset = u64(entry + 8), size = u64(entry + 16);
  const std::uint16_t nan = 0x7e00;
  std::memcpy(&bytes[offset + 2 * 21], &nan, 2);
  put64(entry + 24, ptp::xxh3_64(std::span(bytes).subspan(offset, size)));
  put64(40, 0);
  put64(40, ptp::xxh3_64(std::span(bytes).first(192)));
  auto forged = Index::view(bytes);
  ASSERT_TRUE(forged) << forged.status().to_string();
  const auto q = std::span(values).first(16);
  EXPECT_TRUE(forged->search(q, {3}));
  for (int twice = 0; twice < 2; ++twice) {
    EXPECT_EQ(forged->search(q, {3, 5}).status().code(), ErrorCode::kBadEncodedData);
    std::vector<float> out(16);
    EXPECT_EQ(forged->vectors(0, 1, out).code(), ErrorCode::kBadEncodedData);
  }
}

}  // namespace
}  // namespace agp::index
