// The compressed embedding index: its scores are the codec's decode dotted with the query, its
// recall against brute force, and the errors a caller meets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>
#include <atomic>

#include "agp/codec/codec.hpp"
#include "agp/index/index.hpp"
#include "agp/ptp/checksum.hpp"

namespace agp::index {
namespace {

// n unit-length-ish vectors around `clusters` random centres (real embeddings cluster; uniform
// random directions in 768 dimensions are all nearly orthogonal and rank by noise).
std::vector<float> clustered(std::size_t n, std::uint32_t dim, std::uint64_t seed,
                             int clusters = 40) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> centres(static_cast<std::size_t>(clusters) * dim);
  for (auto& v : centres) v = g(rng);
  std::vector<float> out(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng() % static_cast<std::uint64_t>(clusters);
    for (std::uint32_t k = 0; k < dim; ++k) out[i * dim + k] = centres[c * dim + k] + 0.8f * g(rng);
  }
  return out;
}

std::vector<float> unit(std::span<const float> v) {
  double ss = 0;
  for (float x : v) ss += static_cast<double>(x) * x;
  std::vector<float> u(v.begin(), v.end());
  for (auto& x : u) x = static_cast<float>(x / std::sqrt(ss));
  return u;
}

// The exact top-k ids by inner product (`units`: the data normalized).
std::vector<std::uint64_t> brute_force(const std::vector<float>& units, std::uint32_t dim,
                                       std::span<const float> query, std::size_t k) {
  const auto q = unit(query);
  std::vector<std::pair<double, std::uint64_t>> all;
  for (std::size_t i = 0; i < units.size() / dim; ++i) {
    double dot = 0;
    for (std::uint32_t j = 0; j < dim; ++j) dot += static_cast<double>(units[i * dim + j]) * q[j];
    all.push_back({-dot, i});
  }
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 0; i < k; ++i) ids.push_back(all[i].second);
  return ids;
}

double recall_at_10(const Index& index, const std::vector<float>& data,
                    const std::vector<float>& queries, std::size_t rerank) {
  const std::uint32_t dim = index.dim();
  std::vector<float> units;
  for (std::size_t i = 0; i < data.size() / dim; ++i) {
    const auto u = unit(std::span(data).subspan(i * dim, dim));
    units.insert(units.end(), u.begin(), u.end());
  }
  const std::size_t nq = queries.size() / dim;
  std::size_t found = 0;
  for (std::size_t i = 0; i < nq; ++i) {
    const auto q = std::span(queries).subspan(i * dim, dim);
    const auto truth = brute_force(units, dim, q, 10);
    auto hits = index.search(q, {10, rerank});
    EXPECT_TRUE(hits) << hits.status().to_string();
    if (!hits) return 0;
    std::set<std::uint64_t> got;
    for (const Hit& h : *hits) got.insert(h.id);
    for (auto id : truth) found += got.count(id);
  }
  return static_cast<double>(found) / static_cast<double>(10 * nq);
}

// Every score is the inner product of the normalized query with the vector the codec decodes
// from the same codes (times <x, x'> / |x'|^2 when unbiased): the index scans exactly what
// TurboQuant-MSE stores. 100 dimensions make blocks of 64, 32 and 4 (odd offsets included).
TEST(Index, ScoresAreTheQueryDottedWithTheCodecsDecode) {
  for (const std::uint32_t dim : {768u, 100u}) {
    for (const int bits : {2, 4, 8}) {
      SCOPED_TRACE("dim " + std::to_string(dim) + ", bits " + std::to_string(bits));
      const std::size_t n = 64;
      const auto data = clustered(n, dim, 7);
      auto index = Index::create(dim, {bits, 0x5eed, false, false});
      ASSERT_TRUE(index) << index.status().to_string();
      ASSERT_TRUE(index->add(data));
      auto unbiased = Index::create(dim, {bits, 0x5eed, false, true});
      ASSERT_TRUE(unbiased) << unbiased.status().to_string();
      ASSERT_TRUE(unbiased->add(data));
      codec::CodecConfig c;
      c.bits = bits;
      c.norm_dtype = DType::kF32;
      auto codec = codec::make_codec(c, dim);
      ASSERT_TRUE(codec);
      std::vector<float> units;
      for (std::size_t i = 0; i < n; ++i) {
        const auto u = unit(std::span(data).subspan(i * dim, dim));
        units.insert(units.end(), u.begin(), u.end());
      }
      std::vector<std::byte> codes(n * (*codec)->parts()[0].bytes_per_vector);
      std::vector<std::byte> norms(n * (*codec)->parts()[1].bytes_per_vector);
      const std::span<std::byte> out[] = {codes, norms};
      ASSERT_TRUE((*codec)->encode_all(
          codec::TensorView::contiguous(units.data(), DType::kF32, {n, dim}, 1), out));
      std::vector<float> decoded(n * dim);
      const std::span<const std::byte> in[] = {codes, norms};
      ASSERT_TRUE((*codec)->decode_all(
          in, codec::TensorView::contiguous(decoded.data(), DType::kF32, {n, dim}, 1)));
      const auto query = clustered(1, dim, 99);
      const auto q = unit(query);
      auto hits = index->search(query, {n, 0});
      ASSERT_TRUE(hits) << hits.status().to_string();
      ASSERT_EQ(hits->size(), n);
      auto corrected = unbiased->search(query, {n, 0});
      ASSERT_TRUE(corrected) << corrected.status().to_string();
      ASSERT_EQ(corrected->size(), n);
      std::vector<double> expected(n), expected_unbiased(n);
      for (std::size_t i = 0; i < n; ++i) {
        double dot = 0, xd = 0, dd = 0;
        for (std::uint32_t k = 0; k < dim; ++k) {
          dot += static_cast<double>(decoded[i * dim + k]) * q[k];
          xd += static_cast<double>(decoded[i * dim + k]) * units[i * dim + k];
          dd += static_cast<double>(decoded[i * dim + k]) * decoded[i * dim + k];
        }
        expected[i] = dot;
        expected_unbiased[i] = dot * xd / dd;  // <x, x'> / |x'|^2 times <x', q>
      }
      for (const Hit& h : *hits) EXPECT_NEAR(h.score, expected[h.id], 1e-4) << "vector " << h.id;
      for (const Hit& h : *corrected)
        EXPECT_NEAR(h.score, expected_unbiased[h.id], 1e-4) << "vector " << h.id;
      EXPECT_TRUE(std::is_sorted(hits->begin(), hits->end(),
                                 [](const Hit& a, const Hit& b) { return a.score > b.score; }));
    }
  }
}

// Recall@10 against brute force on clustered data, queries from outside the data.
TEST(Index, RecallAgainstBruteForce) {
  const std::uint32_t dim = 768;
  const auto data = clustered(3000, dim, 1);
  const auto queries = clustered(40, dim, 2);
  auto four = Index::create(dim, {4});
  ASSERT_TRUE(four);
  ASSERT_TRUE(four->add(data));
  auto eight = Index::create(dim, {8});
  ASSERT_TRUE(eight);
  ASSERT_TRUE(eight->add(data));
  const double r4 = recall_at_10(*four, data, queries, 0);
  const double r4_rerank = recall_at_10(*four, data, queries, 100);
  const double r8 = recall_at_10(*eight, data, queries, 0);
  RecordProperty("recall4", std::to_string(r4));
  RecordProperty("recall8", std::to_string(r8));
  std::cout << "recall@10: 4-bit " << r4 << ", after rerank " << r4_rerank << ", 8-bit " << r8
            << "\n";
  EXPECT_GE(r4, 0.80) << "4-bit recall@10";
  EXPECT_GE(r8, 0.97) << "8-bit recall@10";
  EXPECT_GE(r4_rerank, 0.99) << "4-bit recall@10 after reranking 100 candidates";
  EXPECT_GE(r8, r4);
  EXPECT_NEAR(four->code_bits_per_dimension(), 4.0 + 2 * 32.0 / 768,
              1e-9);  // codes, two f32 block norms
}

// With every vector a candidate the two-stage search is the one-stage search; with fewer it
// still returns the k best of its candidates by their whole codes, best first.
TEST(Index, TwoStagesWithEveryCandidateAreOneStage) {
  const std::uint32_t dim = 96;
  const auto data = clustered(500, dim, 5);
  auto index = Index::create(dim, {4});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(data));
  const auto query = clustered(1, dim, 6);
  auto one = index->search(query, {10, 0, 0});
  auto all = index->search(query, {10, 0, 500});
  auto few = index->search(query, {10, 0, 50});
  ASSERT_TRUE(one && all && few);
  ASSERT_EQ(one->size(), 10u);
  ASSERT_EQ(all->size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ((*one)[i].id, (*all)[i].id);
    EXPECT_EQ((*one)[i].score, (*all)[i].score);
  }
  ASSERT_EQ(few->size(), 10u);
  auto whole = index->search(query, {500, 0, 0});
  ASSERT_TRUE(whole);
  for (const Hit& h : *few) {  // the same score the one-stage scan gives that vector
    const auto it =
        std::find_if(whole->begin(), whole->end(), [&](const Hit& w) { return w.id == h.id; });
    ASSERT_NE(it, whole->end());
    EXPECT_EQ(it->score, h.score);
  }
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("agp-index-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

// A snapshot opened in place answers every query as the index that wrote it, and can grow.
TEST(IndexSnapshot, SearchResultsAreIdenticalAfterSaveAndOpen) {
  const std::uint32_t dim = 100;
  const auto data = clustered(300, dim, 11);
  for (const bool exact : {true, false}) {
    auto index = Index::create(dim, {4, 77, exact});
    ASSERT_TRUE(index);
    ASSERT_TRUE(index->add(data));
    const std::string path = temp_path("round-trip");
    ASSERT_TRUE(index->save(path));
    auto opened = Index::open(path);
    ASSERT_TRUE(opened) << opened.status().to_string();
    EXPECT_EQ(opened->size(), 300u);
    EXPECT_EQ(opened->options().seed, 77u);
    EXPECT_EQ(opened->options().keep_exact, exact);
    const auto queries = clustered(5, dim, 12);
    for (std::size_t i = 0; i < 5; ++i) {
      const auto q = std::span(queries).subspan(i * dim, dim);
      const SearchOptions o{10, exact ? std::size_t{30} : 0};
      auto a = index->search(q, o);
      auto b = opened->search(q, o);
      ASSERT_TRUE(a && b);
      ASSERT_EQ(a->size(), b->size());
      for (std::size_t j = 0; j < a->size(); ++j) {
        EXPECT_EQ((*a)[j].id, (*b)[j].id);
        EXPECT_EQ((*a)[j].score, (*b)[j].score);
      }
    }
    std::vector<char> file;  // the same snapshot from memory
    {
      std::ifstream in(path, std::ios::binary);
      file.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto viewed = Index::view(std::as_bytes(std::span(file)));
    ASSERT_TRUE(viewed) << viewed.status().to_string();
    std::vector<char> shifted(file.size() + 1);  // the same bytes one past a float boundary
    std::copy(file.begin(), file.end(), shifted.begin() + 1);
    EXPECT_EQ(Index::view(std::as_bytes(std::span(shifted)).subspan(1)).status().code(),
              ErrorCode::kInvalidArgument);
    auto from_file = opened->search(std::span(queries).subspan(0, dim), {10, 0});
    auto from_memory = viewed->search(std::span(queries).subspan(0, dim), {10, 0});
    ASSERT_TRUE(from_file && from_memory);
    for (std::size_t j = 0; j < from_file->size(); ++j) {
      EXPECT_EQ((*from_file)[j].id, (*from_memory)[j].id);
    }
    // The mapped contents are copied before the index grows.
    ASSERT_TRUE(opened->add(std::span(data).subspan(0, dim)));
    EXPECT_EQ(opened->size(), 301u);
    auto again = opened->search(std::span(data).subspan(0, dim), {2, 0});
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)[0].score, (*again)[1].score);  // vector 0 and its copy, 300
    std::filesystem::remove(path);
  }
}

// Every truncation and every flipped byte of the header and table is refused with a typed error;
// a flipped byte in a section is a checksum mismatch (or, unverified, still no crash).
// A process that has a snapshot open keeps reading it while another writes a new one in its
// place (save() renames a new file over the path).
TEST(IndexSnapshot, SavingOverAnOpenSnapshotLeavesItsReadersAlone) {
  const std::uint32_t dim = 48;
  auto big = Index::create(dim, {4});
  ASSERT_TRUE(big);
  const auto data = clustered(2000, dim, 31);
  ASSERT_TRUE(big->add(data));
  const std::string path = temp_path("replaced");
  ASSERT_TRUE(big->save(path));
  auto reader = Index::open(path);
  ASSERT_TRUE(reader);
  const auto q = std::span(data).subspan(9 * dim, dim);
  auto before = reader->search(q, {5, 10});
  ASSERT_TRUE(before);
  auto small = Index::create(dim, {4});
  ASSERT_TRUE(small);
  ASSERT_TRUE(small->add(std::span(data).first(2 * dim)));
  ASSERT_TRUE(small->save(path));
  auto after = reader->search(q, {5, 10});
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), before->size());
  for (std::size_t i = 0; i < after->size(); ++i) EXPECT_EQ((*after)[i].id, (*before)[i].id);
  auto reopened = Index::open(path);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->size(), 2u);
  std::filesystem::remove(path);
}

TEST(IndexSnapshot, DamagedOrTruncatedSnapshotsAreRefused) {
  const std::uint32_t dim = 40;
  auto index = Index::create(dim, {3});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(clustered(20, dim, 13)));
  const std::string path = temp_path("damaged");
  ASSERT_TRUE(index->save(path));
  std::vector<char> good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(good.size(), 192u);
  const auto query = clustered(1, dim, 14);
  auto write = [&](const std::vector<char>& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  for (std::size_t cut = 0; cut < good.size(); cut += (cut < 256 ? 1 : 97)) {
    write(std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    auto r = Index::open(path);
    ASSERT_FALSE(r) << "a snapshot cut to " << cut << " bytes opened";
  }
  // Flips are checked from memory (Index::view runs the same checks as open without the file).
  // The fp16 copies (the last section) are checked on first use: the index opens, and every read
  // of the copies fails, the same way each time.
  auto info = Index::inspect(path);
  ASSERT_TRUE(info);
  const std::uint64_t copies_at = info->sections.back().offset;
  ASSERT_EQ(info->sections.back().kind, "exact_f16");
  for (std::size_t at = 0; at < good.size(); ++at) {
    auto bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x20);
    const auto bytes = std::as_bytes(std::span(bad));
    auto r = Index::view(bytes);
    if (at >= copies_at) {
      ASSERT_TRUE(r) << at << ": " << r.status().to_string();
      for (int twice = 0; twice < 2; ++twice) {
        EXPECT_EQ(r->search(query, {5, 5}).status().code(), ErrorCode::kSectionChecksumMismatch);
        std::vector<float> out(dim);
        EXPECT_EQ(r->vectors(0, 1, out).code(), ErrorCode::kSectionChecksumMismatch);
      }
      EXPECT_TRUE(r->search(query, {5, 0}));  // the codes are sound
      EXPECT_EQ(r->save(temp_path("laundered")).code(), ErrorCode::kSectionChecksumMismatch);
      EXPECT_EQ(r->add(query).code(), ErrorCode::kSectionChecksumMismatch);
      EXPECT_EQ(r->size(), 20u);
      continue;
    }
    if (at < 192 || r) {
      ASSERT_FALSE(r) << "byte " << at << " flipped and the snapshot opened";
    }
    if (at >= 192 && !r) {  // zero padding between sections included
      EXPECT_TRUE(r.status().code() == ErrorCode::kSectionChecksumMismatch ||
                  r.status().code() == ErrorCode::kNonZeroPadding)
          << at << ": " << r.status().to_string();
    }
    auto unverified = Index::view(bytes, false);  // no checksums: may open, must not crash
    if (unverified) (void)unverified->search(query, {5, 5});
  }
  auto longer = good;
  longer.push_back(0);
  write(longer);
  EXPECT_EQ(Index::open(path).status().code(), ErrorCode::kSectionOutOfBounds);
  EXPECT_EQ(Index::open(temp_path("missing")).status().code(), ErrorCode::kIoError);
  std::filesystem::remove(path);
}

TEST(Index, ErrorsAreTypedAndLeaveTheIndexAsItWas) {
  EXPECT_EQ(Index::create(0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Index::create(8, {9}).status().code(), ErrorCode::kInvalidArgument);
  auto index = Index::create(4, {4, 1, true});
  ASSERT_TRUE(index);
  EXPECT_EQ(index->add(std::vector<float>{1, 2, 3}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(index->add(std::vector<float>{1, 2, 3, 4, 1, NAN, 0, 0}).code(),
            ErrorCode::kNonFiniteInput);
  EXPECT_EQ(index->add(std::vector<float>{1, 2, 3, 4, 0, 0, 0, 0}).code(),
            ErrorCode::kValueOutOfRange);
  EXPECT_EQ(index->size(), 0u);  // nothing of a failed batch stays
  ASSERT_TRUE(index->add(std::vector<float>{1, 2, 3, 4, -1, 0, 0, 0}));
  EXPECT_EQ(index->size(), 2u);
  EXPECT_EQ(index->search(std::vector<float>{1, 2, 3}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(index->search(std::vector<float>{0, 0, 0, 0}).status().code(),
            ErrorCode::kValueOutOfRange);
  auto hits = index->search(std::vector<float>{1, 2, 3, 4}, {5, 2});
  ASSERT_TRUE(hits);
  ASSERT_EQ(hits->size(), 2u);  // k beyond the size gives what there is
  EXPECT_EQ((*hits)[0].id, 0u);
  EXPECT_NEAR((*hits)[0].score, 1.0, 1e-3);
  auto no_exact = Index::create(4, {4, 1, false});
  ASSERT_TRUE(no_exact);
  EXPECT_EQ(no_exact->search(std::vector<float>{1, 2, 3, 4}, {1, 10}).status().code(),
            ErrorCode::kInvalidArgument);
}

// Threads share the scan of one query, and a batch shares its queries: the same hits either way.
TEST(Index, ThreadsAndBatchesGiveTheSameHits) {
  const std::uint32_t dim = 64;
  const auto data = clustered(40000, dim, 8);
  const auto queries = clustered(6, dim, 9);
  auto index = Index::create(dim, {4});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(data));
  for (const std::size_t coarse : {std::size_t{0}, std::size_t{500}, SearchOptions::kAutoCoarse}) {
    SearchOptions one{10, 20, coarse};
    SearchOptions two = one;
    two.threads = 2;
    std::vector<std::vector<Hit>> singles;
    for (std::size_t i = 0; i < 6; ++i) {
      const auto q = std::span(queries).subspan(i * dim, dim);
      auto a = index->search(q, one), b = index->search(q, two);
      ASSERT_TRUE(a && b);
      ASSERT_EQ(a->size(), 10u);
      ASSERT_EQ(a->size(), b->size());
      for (std::size_t j = 0; j < a->size(); ++j) {
        EXPECT_EQ((*a)[j].id, (*b)[j].id) << "coarse " << coarse << " query " << i;
        EXPECT_EQ((*a)[j].score, (*b)[j].score);
      }
      singles.push_back(std::move(a).value());
    }
    for (const unsigned threads : {1u, 2u, 3u}) {
      auto batch = index->search_batch(queries, one, threads);
      ASSERT_TRUE(batch);
      ASSERT_EQ(batch->size(), 6u);
      for (std::size_t i = 0; i < 6; ++i) {
        ASSERT_EQ((*batch)[i].size(), singles[i].size());
        for (std::size_t j = 0; j < singles[i].size(); ++j)
          EXPECT_EQ((*batch)[i][j].id, singles[i][j].id) << threads << " threads";
      }
    }
  }
  // A bad query fails the batch, naming it; a ragged batch is refused.
  std::vector<float> bad(queries);
  bad[3 * dim + 5] = std::nanf("");
  auto failed = index->search_batch(bad, {}, 2);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.status().code(), ErrorCode::kNonFiniteInput);
  EXPECT_NE(failed.status().message().find("query 3"), std::string::npos) << failed.status().message();
  EXPECT_EQ(index->search_batch(std::span(queries).first(dim + 1)).status().code(),
            ErrorCode::kInvalidArgument);
}

// A host may add while other threads search: every search sees a whole index, before or after.
TEST(Index, AddingWhileOthersSearch) {
  const std::uint32_t dim = 64;
  auto index = Index::create(dim, {4});
  ASSERT_TRUE(index);
  const auto first = clustered(3000, dim, 21);
  ASSERT_TRUE(index->add(first));
  const auto more = clustered(6000, dim, 22);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, searches{0};
  auto searcher = [&] {
    while (!done) {
      auto hits = index->search(std::span(first).subspan(5 * dim, dim), {5, 20});
      if (!hits || hits->empty() || (*hits)[0].id != 5) ++bad;
      ++searches;
    }
  };
  std::thread a(searcher), b(searcher);
  for (std::size_t i = 0; i < 30; ++i)
    ASSERT_TRUE(index->add(std::span(more).subspan(i * 200 * dim, 200 * dim)));
  done = true;
  a.join();
  b.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(searches, 0);
  EXPECT_EQ(index->size(), 9000u);
}

// Huge k, rerank or candidate counts are clamped to the index, not used to size buffers; vectors
// of subnormal values have a direction like any other.
TEST(Index, AbsurdCountsAndTinyValues) {
  const std::uint32_t dim = 32;
  auto index = Index::create(dim, {4});
  ASSERT_TRUE(index);
  const auto data = clustered(50, dim, 23);
  ASSERT_TRUE(index->add(data));
  const std::size_t huge = std::size_t{1} << 62;
  for (const SearchOptions o : {SearchOptions{huge, 0}, SearchOptions{3, huge},
                                SearchOptions{3, 0, huge}, SearchOptions{huge, huge, huge}}) {
    auto hits = index->search(std::span(data).first(dim), o);
    ASSERT_TRUE(hits) << hits.status().to_string();
    EXPECT_EQ(hits->size(), std::min<std::size_t>(o.k, 50));
  }
  std::vector<float> tiny(dim, 0.0f);
  tiny[3] = 1e-40f, tiny[7] = -3e-41f;
  ASSERT_TRUE(index->add(tiny));
  auto hits = index->search(tiny, {1});
  ASSERT_TRUE(hits);
  EXPECT_EQ((*hits)[0].id, 50u);
  EXPECT_TRUE(std::isfinite((*hits)[0].score));
  EXPECT_GT((*hits)[0].score, 0.9f);
}

}  // namespace
}  // namespace agp::index

namespace agp::index {
namespace {

// Vectors that share a strong common direction (as real embeddings do), clustered around it.
std::vector<float> offset_clusters(std::size_t n, std::uint32_t dim, std::uint64_t seed) {
  auto v = clustered(n, dim, seed);
  std::mt19937_64 rng(99);  // the same direction for data and queries
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> common(dim);
  for (auto& c : common) c = 2.5f * g(rng);
  for (std::size_t i = 0; i < n; ++i)
    for (std::uint32_t k = 0; k < dim; ++k) v[i * dim + k] += common[k];
  return v;
}

// A centered index codes each vector's difference from the mean of its first add: it ranks
// better than the same codes of the vectors themselves, its scores stay cosine estimates, and
// the mean survives a snapshot (version 3). Version 2 snapshots still open; a forged mean is
// refused.
TEST(IndexCentering, CodesTheDifferenceFromTheMeanAndRanksBetter) {
  const std::uint32_t dim = 128;
  const auto data = offset_clusters(4096, dim, 21);
  const auto queries = offset_clusters(64, dim, 22);
  auto plain = Index::create(dim, {4, 0x5eed, true, true, false});
  auto centered = Index::create(dim, {4, 0x5eed, true, true, true});
  ASSERT_TRUE(plain && centered);
  ASSERT_TRUE(plain->add(data));
  ASSERT_TRUE(centered->add(data));
  const double r_plain = recall_at_10(*plain, data, queries, 0);
  const double r_centered = recall_at_10(*centered, data, queries, 0);
  EXPECT_GT(r_centered, r_plain + 0.02) << r_plain << " plain";
  // Scores without rerank estimate the cosine (the mean's part added back).
  const auto q = std::span(queries).first(dim);
  auto hits = centered->search(q, {5, 0});
  auto exact = centered->search(q, {5, 5});
  ASSERT_TRUE(hits && exact);
  EXPECT_NEAR((*hits)[0].score, (*exact)[0].score, 0.05);
  // The mean is part of the snapshot: the reopened index answers identically.
  const std::string path = temp_path("centered");
  ASSERT_TRUE(centered->save(path));
  auto info = Index::inspect(path);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->version, 3u);
  EXPECT_TRUE(info->centered);
  auto reopened = Index::open(path);
  ASSERT_TRUE(reopened) << reopened.status().to_string();
  auto again = reopened->search(q, {5, 0});
  ASSERT_TRUE(again);
  for (std::size_t i = 0; i < hits->size(); ++i) {
    EXPECT_EQ((*again)[i].id, (*hits)[i].id);
    EXPECT_EQ((*again)[i].score, (*hits)[i].score);
  }
  std::vector<float> back(dim);
  ASSERT_TRUE(reopened->vectors(0, 1, back));  // the fp16 copy of vector 0, unit length
  std::vector<std::byte> bytes(std::filesystem::file_size(path));
  std::ifstream(path, std::ios::binary)
      .read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  auto put32 = [&](std::size_t at, std::uint32_t v) { std::memcpy(&bytes[at], &v, 4); };
  auto put64 = [&](std::size_t at, std::uint64_t v) { std::memcpy(&bytes[at], &v, 8); };
  auto u64 = [&](std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, &bytes[at], 8);
    return v;
  };
  auto reseal = [&](std::vector<std::byte>& b) {
    std::memcpy(&b[40], "\0\0\0\0\0\0\0\0", 8);
    const std::uint64_t sum = ptp::xxh3_64(std::span(b).first(192));
    std::memcpy(&b[40], &sum, 8);
  };
  {  // A mean no unit vectors have, under good checksums.
    auto forged = bytes;
    const std::size_t entry = 48 + 2 * 32;  // the norms section, the mean at its end
    const std::uint64_t offset = u64(entry + 8), size = u64(entry + 16);
    const float two = 2.0f;
    std::memcpy(&forged[offset + size - 4], &two, 4);
    const std::uint64_t sum = ptp::xxh3_64(std::span(forged).subspan(offset, size));
    std::memcpy(&forged[entry + 24], &sum, 8);
    reseal(forged);
    EXPECT_EQ(Index::view(forged).status().code(), ErrorCode::kBadEncodedData);
  }
  {  // Version 2 has no centering: its flag there is refused.
    auto v2 = bytes;
    std::memcpy(&v2[8], "\x02\0\0\0", 4);
    reseal(v2);
    EXPECT_EQ(Index::view(v2).status().code(), ErrorCode::kBadSectionTable);
  }
  // An uncentered index written as version 2 (what earlier builds wrote) opens and answers.
  ASSERT_TRUE(plain->save(path));
  bytes.assign(std::filesystem::file_size(path), std::byte{0});
  std::ifstream(path, std::ios::binary)
      .read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  put32(8, 2);
  reseal(bytes);
  (void)put64;
  auto old = Index::view(bytes);
  ASSERT_TRUE(old) << old.status().to_string();
  auto from_old = old->search(q, {5, 0});
  auto from_plain = plain->search(q, {5, 0});
  ASSERT_TRUE(from_old && from_plain);
  EXPECT_EQ((*from_old)[0].id, (*from_plain)[0].id);
  std::filesystem::remove(path);
}

// Too small a first add leaves the index uncentered for good (a mean of a few vectors would
// distort it); adds that follow do not center it either.
TEST(IndexCentering, AFirstAddOfFewVectorsLeavesTheIndexUncentered) {
  const std::uint32_t dim = 64;
  auto index = Index::create(dim, {4, 0x5eed, true, true, true});
  ASSERT_TRUE(index);
  ASSERT_TRUE(index->add(offset_clusters(10, dim, 3)));
  ASSERT_TRUE(index->add(offset_clusters(1000, dim, 4)));
  const std::string path = temp_path("few");
  ASSERT_TRUE(index->save(path));
  auto info = Index::inspect(path);
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->centered);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace agp::index
