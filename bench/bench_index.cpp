// Index benchmark: the compressed embedding index (index/) against exact brute force on real-model
// vectors: per-token hidden states of the devmodel over C/C++ header text (the system's headers),
// the states entering layer 2 and those leaving layer 4 concatenated to 768 dimensions and
// L2-normalized; queries from the held-out evaluation windows (windows.bin), text outside the
// corpus. The corpus is made deterministically on first use and cached under the build folder.
// A synthetic set of random unit vectors is measured beside it. Writes
// bench/results/latest-index.json.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <atomic>
#include <cmath>
#include <thread>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <unistd.h>

#include "agp/codec/codec.hpp"
#include "agp/fidelity/calibrate.hpp"
#include "agp/fidelity/harness.hpp"
#include "agp/fidelity/llama.hpp"
#include "agp/index/index.hpp"
#include "bench_paths.hpp"
#if defined(AGP_HAVE_FAISS)
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IndexScalarQuantizer.h>
#include <omp.h>
#endif
#if defined(AGP_HAVE_HNSWLIB)
#include <hnswlib/hnswlib.h>
#endif

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kTool = "bench_index";
constexpr int kWindow = 256;  // tokens per text window
constexpr std::uint32_t kDim = 768;

[[noreturn]] void die(const std::string& why) {
  agp::bench::die(kTool, why);
}

void normalize_rows(std::vector<float>& v, std::uint32_t dim) {
  for (std::size_t i = 0; i < v.size() / dim; ++i) {
    double ss = 0;
    for (std::uint32_t k = 0; k < dim; ++k)
      ss += static_cast<double>(v[i * dim + k]) * v[i * dim + k];
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.0f;
    for (std::uint32_t k = 0; k < dim; ++k) v[i * dim + k] *= inv;
  }
}

// Per-token states of `windows`: layer 2's input beside layer 4's output, normalized; at most
// `limit` vectors.
std::vector<float> model_vectors(const agp::fidelity::LlamaModel& model,
                                 const std::vector<std::vector<int>>& windows, std::size_t limit) {
  const int hidden = model.config().hidden_size;
  if (2 * hidden != static_cast<int>(kDim)) die("the model's hidden size is not 384");
  std::vector<float> out;
  out.reserve(limit * kDim);
  for (const auto& w : windows) {
    const int t = static_cast<int>(w.size());
    std::vector<float> x(static_cast<std::size_t>(t) * hidden);
    if (auto s = model.embed(w, x.data()); !s) die(s.to_string());
    auto cache = model.new_cache();
    if (auto s = model.run_layers(0, 2, x.data(), t, cache); !s) die(s.to_string());
    const std::vector<float> early = x;
    if (auto s = model.run_layers(2, 4, x.data(), t, cache); !s) die(s.to_string());
    for (int p = 0; p < t && out.size() < limit * kDim; ++p) {
      out.insert(out.end(), early.begin() + static_cast<std::ptrdiff_t>(p) * hidden,
                 early.begin() + static_cast<std::ptrdiff_t>(p + 1) * hidden);
      out.insert(out.end(), x.begin() + static_cast<std::ptrdiff_t>(p) * hidden,
                 x.begin() + static_cast<std::ptrdiff_t>(p + 1) * hidden);
    }
    if (out.size() >= limit * kDim) break;
  }
  normalize_rows(out, kDim);
  return out;
}

// The corpus of `n` vectors, from the cache when an earlier run made it from the same text.
// The text is whatever the machine's headers hold, so it changes with the packages installed:
// `text` gets its XXH3 and file counts for the report.
std::vector<float> corpus(const agp::fidelity::LlamaModel& model, const std::string& headers,
                          const std::vector<std::vector<int>>& eval, std::size_t n,
                          const std::string& cache_dir, json& text_info) {
  const int count = static_cast<int>((n + kWindow - 1) / kWindow);
  auto text = agp::fidelity::calibration_text_from_headers(headers, eval, count, kWindow, 0x1dc5);
  if (!text) die("corpus text from " + headers + ": " + text.status().to_string());
  if (text->windows.size() < static_cast<std::size_t>(count)) {
    die(headers + " holds text for " + std::to_string(text->windows.size() * kWindow) +
        " tokens, not " + std::to_string(n));
  }
  text_info = {{"headers", headers},
               {"text_xxh3", std::to_string(text->xxh3)},
               {"files_seen", text->files_seen},
               {"files_excluded_as_evaluation_text", text->files_excluded}};
  const std::filesystem::path path =
      std::filesystem::path(cache_dir) /
      ("corpus-" + std::to_string(n) + "-" + std::to_string(text->xxh3) + ".f32");
  std::vector<float> v(n * kDim);
  if (std::ifstream in(path, std::ios::binary);
      in &&
      in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4))) {
    std::cerr << kTool << ": corpus of " << n << " vectors from the cache (" << path.string()
              << ")\n";
    return v;
  }
  std::cerr << kTool << ": computing a corpus of " << n << " vectors (" << count
            << " windows of header text) ...\n";
  v = model_vectors(model, text->windows, n);
  std::filesystem::create_directories(cache_dir);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

float dot(const float* x, const float* q) {
  float d = 0;
  for (std::uint32_t k = 0; k < kDim; ++k) d += x[k] * q[k];
  return d;
}

// `nq` queries spread over the evaluation windows' tokens.
std::vector<float> model_queries(const agp::fidelity::LlamaModel& model,
                                 const std::vector<std::vector<int>>& eval, std::size_t nq) {
  const std::vector<float> all = model_vectors(model, eval, eval.size() * kWindow);
  const std::size_t available = all.size() / kDim;
  std::vector<float> q;
  for (std::size_t i = 0; i < nq; ++i) {
    const std::size_t at = (i * available) / nq + 17;  // past each window's first tokens
    q.insert(q.end(), all.begin() + static_cast<std::ptrdiff_t>((at % available) * kDim),
             all.begin() + static_cast<std::ptrdiff_t>((at % available + 1) * kDim));
  }
  return q;
}

std::vector<float> random_units(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * kDim);
  for (auto& x : v) x = g(rng);
  normalize_rows(v, kDim);
  return v;
}

// The exact top 10 of every query, and the 10th best score (the bar a result must reach).
struct Truth {
  std::vector<std::uint64_t> ids;
  float tenth = 0;
};
std::vector<Truth> truth(const std::vector<float>& data, const std::vector<float>& queries) {
  const std::size_t n = data.size() / kDim;
  std::vector<Truth> out;
  std::vector<std::pair<float, std::uint64_t>> scored(n);
  for (std::size_t qi = 0; qi < queries.size() / kDim; ++qi) {
    const float* q = queries.data() + qi * kDim;
    for (std::size_t i = 0; i < n; ++i) scored[i] = {-dot(data.data() + i * kDim, q), i};
    std::partial_sort(scored.begin(), scored.begin() + 10, scored.end());
    Truth t;
    for (int i = 0; i < 10; ++i) t.ids.push_back(scored[static_cast<std::size_t>(i)].second);
    t.tenth = -scored[9].first;
    out.push_back(std::move(t));
  }
  return out;
}

// Recall@10 and per-query times of `search` (one query at a time). Recall counts ties: header
// text repeats, so identical states do, and which of two equal vectors is "the" neighbour is
// arbitrary; a result counts when its exact score reaches the tenth best (as ann-benchmarks
// counts).
template <typename Search>
json timed_queries(const std::vector<float>& data, const std::vector<float>& queries,
                   const std::vector<Truth>& exact, Search search) {
  std::vector<double> ms;
  std::size_t found = 0;
  const std::size_t nq = queries.size() / kDim;
  // A few untimed queries first: right after a build of hundreds of megabytes the first queries
  // run up to twice as slow (measured), which is the build's cost, not a query's.
  for (std::size_t qi = 0; qi < std::min<std::size_t>(8, nq); ++qi) (void)search(queries.data() + qi * kDim);
  for (std::size_t qi = 0; qi < nq; ++qi) {
    const float* q = queries.data() + qi * kDim;
    const auto q0 = Clock::now();
    const std::vector<std::uint64_t> ids = search(q);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - q0).count());
    for (const auto id : ids) found += dot(data.data() + id * kDim, q) >= exact[qi].tenth - 1e-6f ? 1 : 0;
  }
  return {{"recall_at_10", static_cast<double>(found) / static_cast<double>(10 * nq)},
          {"ms_per_query_p50", agp::bench::percentile(ms, 0.5)},
          {"ms_per_query_p95", agp::bench::percentile(ms, 0.95)}};
}

std::string g_cache_dir = "build/index-cache";  // --cache
std::vector<std::size_t> g_coarse;                // --coarse (empty: 1%, 3% and 10% of the set)
bool g_full = true;                               // --full / --no-full
bool g_faiss = true;                              // --faiss / --no-faiss
bool g_peers_on_random = false;                   // --peers-on-random

// Saves `index`, then opens the snapshot with and without its checksums verified (the file is
// in the page cache, as on a host that opens it again): times and size.
json snapshot_times(const agp::index::Index& index) {
  std::filesystem::create_directories(g_cache_dir);
  const std::string path = g_cache_dir + "/snapshot-" + std::to_string(::getpid()) + ".agpidx";
  if (auto s = index.save(path); !s) die(s.to_string());
  // The median of 3 opens: the first may find the file's pages out of the cache (it was just
  // written beside a gigabyte of corpus), as a host opening it again would not.
  auto time_open = [&](bool verify) {
    std::vector<double> ms;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = Clock::now();
      auto opened = agp::index::Index::open(path, verify);
      if (!opened) die(opened.status().to_string());
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[1];
  };
  const double verified = time_open(true);
  const double unverified = time_open(false);
  const double mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  std::filesystem::remove(path);
  return {{"open_ms_verified", verified}, {"open_ms_unverified", unverified}, {"file_mb", mb}};
}

// One index configuration on one data set.
json measure(const std::vector<float>& data, const std::vector<float>& queries,
             const std::vector<Truth>& exact, int bits, std::size_t rerank, std::size_t coarse,
             bool unbias = true, bool center = true) {
  auto index = agp::index::Index::create(kDim, {bits, 0x5eed, rerank > 0, unbias, center});
  if (!index) die(index.status().to_string());
  const auto t0 = Clock::now();
  if (auto s = index->add(data); !s) die(s.to_string());
  const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  json r = timed_queries(data, queries, exact, [&](const float* q) {
    auto hits = index->search(std::span(q, kDim), {10, rerank, coarse});
    if (!hits) die(hits.status().to_string());
    std::vector<std::uint64_t> ids;
    for (const auto& h : *hits) ids.push_back(h.id);
    return ids;
  });
  const double n = static_cast<double>(data.size() / kDim);
  r["bits"] = bits;
  r["rerank_candidates"] = rerank;
  r["coarse_candidates"] = coarse == agp::index::SearchOptions::kAutoCoarse ? json("auto")
                                                                              : json(coarse);
  r["estimator"] = std::string(unbias ? "turboquant_mse_unbiased" : "turboquant_mse") +
                   (center ? "_centered" : "");
  r["build_ms"] = build_ms;
  r["code_bits_per_dimension"] = index->code_bits_per_dimension();
  r["codes_mb"] = n * index->code_bits_per_dimension() * kDim / 8 / 1e6;
  r["ratio_vs_fp32"] = 32.0 / index->code_bits_per_dimension();
  if (coarse == 0) r["snapshot"] = snapshot_times(*index);
  return r;
}

// TurboQuant-prod (the codec's prod codec: MSE codes of bits - 1 and a 1-bit QJL sketch of the
// residual, an unbiased inner-product estimator): every vector decoded and scored by brute force,
// for its recall only (the index does not store this code).
json measure_prod(const std::vector<float>& data, const std::vector<float>& queries,
                  const std::vector<Truth>& exact, int bits) {
  agp::codec::CodecConfig c;
  c.id = agp::CodecId::kTurboQuantProd;
  c.bits = bits;
  c.norm_dtype = agp::DType::kF32;
  auto codec = agp::codec::make_codec(c, kDim);
  if (!codec) die(codec.status().to_string());
  const std::uint64_t n = data.size() / kDim;
  std::vector<std::vector<std::byte>> parts;
  std::vector<std::span<std::byte>> out;
  for (const auto& p : (*codec)->parts()) {
    parts.emplace_back(n * p.bytes_per_vector);
    out.emplace_back(parts.back());
  }
  const auto in = agp::codec::TensorView::contiguous(data.data(), agp::DType::kF32, {n, kDim}, 1);
  if (auto st = (*codec)->encode_all(in, out); !st) die(st.to_string());
  std::vector<float> decoded(data.size());
  std::vector<std::span<const std::byte>> back(out.begin(), out.end());
  if (auto st = (*codec)->decode_all(
          back, agp::codec::TensorView::contiguous(decoded.data(), agp::DType::kF32, {n, kDim}, 1));
      !st) {
    die(st.to_string());
  }
  const auto found = truth(decoded, queries);  // the top 10 by the decoded vectors' scores
  std::size_t hits = 0;
  for (std::size_t qi = 0; qi < found.size(); ++qi) {
    const float* q = queries.data() + qi * kDim;
    for (const auto id : found[qi].ids) hits += dot(data.data() + id * kDim, q) >= exact[qi].tenth - 1e-6f ? 1 : 0;
  }
  std::uint64_t bytes = 0;
  for (const auto& p : parts) bytes += p.size();
  return {{"bits", bits},
          {"estimator", "turboquant_prod"},
          {"recall_at_10", static_cast<double>(hits) / static_cast<double>(10 * found.size())},
          {"code_bits_per_dimension", 8.0 * static_cast<double>(bytes) / static_cast<double>(n * kDim)},
          {"scored", "by brute force over the decoded vectors (recall only)"}};
}

// The default search (automatic candidates, exact rerank of 100) with 2 threads per query, and
// the queries as one batch on 1 and 2 threads (queries per second).
json measure_parallel(const std::vector<float>& data, const std::vector<float>& queries,
                      const std::vector<Truth>& exact) {
  auto index = agp::index::Index::create(kDim, {4, 0x5eed, true, true});
  if (!index) die(index.status().to_string());
  if (auto s = index->add(data); !s) die(s.to_string());
  agp::index::SearchOptions two{10, 100};
  two.threads = 2;
  json r = timed_queries(data, queries, exact, [&](const float* q) {
    auto hits = index->search(std::span(q, kDim), two);
    if (!hits) die(hits.status().to_string());
    std::vector<std::uint64_t> ids;
    for (const auto& h : *hits) ids.push_back(h.id);
    return ids;
  });
  r["threads_per_query"] = 2;
  r["rerank_candidates"] = 100;
  r["coarse_candidates"] = "auto";
  json batches = json::array();
  const double nq = static_cast<double>(queries.size() / kDim);
  for (const unsigned threads : {1u, 2u}) {
    (void)index->search_batch(queries, {10, 100}, threads);  // warm
    double best = 1e300;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = Clock::now();
      auto hits = index->search_batch(queries, {10, 100}, threads);
      if (!hits) die(hits.status().to_string());
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    batches.push_back({{"threads", threads}, {"queries", nq}, {"queries_per_second", nq / best}});
  }
  r["batch"] = batches;
  return r;
}

#if defined(AGP_HAVE_FAISS)
// A FAISS index on the same vectors (trained on them), one thread, one query at a time.
json measure_faiss(const std::string& name, faiss::Index& index, double bits_per_dimension,
                   const std::vector<float>& data, const std::vector<float>& queries,
                   const std::vector<Truth>& exact, double built_ms = -1) {
  const auto n = static_cast<faiss::Index::idx_t>(data.size() / kDim);
  const auto t0 = Clock::now();
  if (built_ms < 0) {  // not built yet (a search-time setting of a built index is measured again)
    omp_set_num_threads(2);  // builds on both cores (reported as such); queries on one
    index.train(n, data.data());
    index.add(n, data.data());
    omp_set_num_threads(1);
  }
  const double build_ms = built_ms >= 0
                              ? built_ms
                              : std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  json r = timed_queries(data, queries, exact, [&](const float* q) {
    float d[10];
    faiss::Index::idx_t ids[10];
    index.search(1, q, 10, d, ids);
    std::vector<std::uint64_t> out;
    for (auto id : ids) {
      if (id >= 0) out.push_back(static_cast<std::uint64_t>(id));
    }
    return out;
  });
  r["faiss"] = name;
  r["build_ms"] = build_ms;
  r["build_threads"] = 2;
  r["code_bits_per_dimension"] = bits_per_dimension;
  return r;
}

json faiss_rows(const std::vector<float>& data, const std::vector<float>& queries,
                const std::vector<Truth>& exact, bool graph_peers) {
  omp_set_num_threads(1);
  json rows = json::array();
  if (graph_peers) {
    const auto n = static_cast<std::size_t>(data.size() / kDim);
    // Peers that win by algorithm at about 4 bits per dimension: an inverted file of 4-bit scalar
    // codes (reads only the lists probed; 8 more bytes per vector for its id), and an HNSW graph
    // over 4-bit codes (M = 32: 64 links of 4 bytes at the base level, 2.7 bits per dimension more).
    const std::size_t nlist = std::clamp<std::size_t>(
        static_cast<std::size_t>(4 * std::sqrt(static_cast<double>(n))), 16, 2048);
    faiss::IndexFlatIP coarse(kDim);
    faiss::IndexIVFScalarQuantizer ivf(&coarse, kDim, nlist, faiss::ScalarQuantizer::QT_4bit,
                                       faiss::METRIC_INNER_PRODUCT);
    double built_ms = -1;
    for (const std::size_t nprobe : {std::size_t{16}, std::size_t{64}}) {
      ivf.nprobe = nprobe;
      json r = measure_faiss("IndexIVFScalarQuantizer QT_4bit nlist=" + std::to_string(nlist) +
                                 " nprobe=" + std::to_string(nprobe),
                             ivf, 4 + 64.0 / kDim, data, queries, exact, built_ms);
      built_ms = r["build_ms"].get<double>();
      rows.push_back(std::move(r));
    }
    {
      faiss::IndexHNSWSQ hnsw(kDim, faiss::ScalarQuantizer::QT_4bit, 32, faiss::METRIC_INNER_PRODUCT);
      hnsw.hnsw.efSearch = 128;
      rows.push_back(measure_faiss("IndexHNSWSQ QT_4bit M=32 efSearch=128", hnsw,
                                   4 + 64.0 * 32 / kDim, data, queries, exact));
    }
  }
  faiss::IndexFlatIP flat(kDim);
  rows.push_back(measure_faiss("IndexFlatIP", flat, 32, data, queries, exact));
  faiss::IndexScalarQuantizer sq(kDim, faiss::ScalarQuantizer::QT_4bit, faiss::METRIC_INNER_PRODUCT);
  rows.push_back(measure_faiss("IndexScalarQuantizer QT_4bit", sq, 4, data, queries, exact));
  // 4 bits per dimension: one 4-bit sub-quantizer per dimension.
  faiss::IndexPQFastScan fast(kDim, kDim, 4, faiss::METRIC_INNER_PRODUCT);
  rows.push_back(measure_faiss("IndexPQFastScan M=768 nbits=4", fast, 4, data, queries, exact));
  return rows;
}
#endif

#if defined(AGP_HAVE_HNSWLIB)
// hnswlib (header-only, so compiled here with this build's flags: its SIMD inner product is the
// machine's): full fp32 vectors in an HNSW graph, built on both cores, searched on one.
json hnswlib_rows(const std::vector<float>& data, const std::vector<float>& queries,
                  const std::vector<Truth>& exact) {
  const std::size_t n = data.size() / kDim;
  constexpr std::size_t kM = 16, kEfConstruction = 100;
  hnswlib::InnerProductSpace space(kDim);
  hnswlib::HierarchicalNSW<float> graph(&space, n, kM, kEfConstruction);
  const auto t0 = Clock::now();
  graph.addPoint(data.data(), 0);
  std::atomic<std::size_t> next{1};
  auto worker = [&] {
    for (std::size_t i = next++; i < n; i = next++) graph.addPoint(data.data() + i * kDim, i);
  };
  std::thread helper(worker);
  worker();
  helper.join();
  const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  // Bytes per vector at the base level (the vector, its links, its label); upper levels add ~1/M.
  const double bits_per_dim = 8.0 * static_cast<double>(graph.size_data_per_element_) / kDim;
  json rows = json::array();
  for (const std::size_t ef : {std::size_t{32}, std::size_t{128}}) {
    graph.setEf(ef);
    json r = timed_queries(data, queries, exact, [&](const float* q) {
      auto top = graph.searchKnn(q, 10);
      std::vector<std::uint64_t> out;
      while (!top.empty()) {
        out.push_back(top.top().second);
        top.pop();
      }
      return out;
    });
    r["hnswlib"] = "HierarchicalNSW fp32 M=" + std::to_string(kM) + " efConstruction=" +
                   std::to_string(kEfConstruction) + " ef=" + std::to_string(ef);
    r["build_ms"] = build_ms;
    r["build_threads"] = 2;
    r["bits_per_dimension"] = bits_per_dim;
    rows.push_back(std::move(r));
  }
  return rows;
}
#endif

json measure_set(const std::string& name, const std::vector<float>& data,
                 const std::vector<float>& queries) {
  std::cerr << kTool << ": " << name << ": brute force over " << data.size() / kDim
            << " vectors ...\n";
  const auto exact = truth(data, queries);
  json rows = json::array();
  for (const int bits : {4, 8}) {
    if (!g_full) break;
    for (const bool unbias : {false, true}) {
      for (const std::size_t rerank : {std::size_t{0}, std::size_t{100}}) {
        json r = measure(data, queries, exact, bits, rerank, 0, unbias);
        std::cerr << kTool << ": " << name << ": " << r.dump() << "\n";
        rows.push_back(std::move(r));
      }
    }
  }
  for (const int bits : {4}) {
    json r = measure_prod(data, queries, exact, bits);
    std::cerr << kTool << ": " << name << ": " << r.dump() << "\n";
    rows.push_back(std::move(r));
  }
  // The sign stage first, then whole codes for its best candidates.
  const std::size_t n = data.size() / kDim;
  const std::vector<std::size_t> coarse_counts =
      g_coarse.empty() ? std::vector<std::size_t>{n / 100, n / 30, n / 10} : g_coarse;
  std::vector<std::size_t> with_auto = coarse_counts;
  with_auto.push_back(agp::index::SearchOptions::kAutoCoarse);
  for (const std::size_t coarse : with_auto) {
    if (coarse < 10 || (coarse >= n && coarse != agp::index::SearchOptions::kAutoCoarse)) continue;
    for (const std::size_t rerank : {std::size_t{0}, std::size_t{100}}) {
      json r = measure(data, queries, exact, 4, rerank, coarse);
      std::cerr << kTool << ": " << name << ": " << r.dump() << "\n";
      rows.push_back(std::move(r));
    }
  }
  for (const std::size_t coarse : {std::size_t{0}, agp::index::SearchOptions::kAutoCoarse}) {
    // The same without centering, for the comparison (docs/index.md).
    json r = measure(data, queries, exact, 4, 0, coarse, true, false);
    std::cerr << kTool << ": " << name << ": " << r.dump() << "\n";
    rows.push_back(std::move(r));
  }
  json parallel = measure_parallel(data, queries, exact);
  std::cerr << kTool << ": " << name << ": " << parallel.dump() << "\n";
  json hnsw = "not in this build (Debian: libhnswlib-dev; Homebrew: hnswlib)";
#if defined(AGP_HAVE_HNSWLIB)
  if (g_faiss && (g_peers_on_random || name.rfind("random", 0) != 0)) {
    std::cerr << kTool << ": " << name << ": hnswlib ...\n";
    hnsw = hnswlib_rows(data, queries, exact);
    std::cerr << kTool << ": " << name << ": hnswlib " << hnsw.dump() << "\n";
  }
#endif
  json faiss = "not in this build (Debian: libfaiss-dev; Homebrew: faiss)";
#if defined(AGP_HAVE_FAISS)
  if (!g_faiss) {
    return {{"data", name}, {"vectors", data.size() / kDim}, {"rows", rows}, {"parallel", parallel}};
  }
  std::cerr << kTool << ": " << name << ": FAISS ...\n";
  faiss = faiss_rows(data, queries, exact, g_peers_on_random || name.rfind("random", 0) != 0);
  std::cerr << kTool << ": " << name << ": FAISS " << faiss.dump() << "\n";
#endif
  return {{"data", name}, {"vectors", data.size() / kDim}, {"dim", kDim},
          {"queries", queries.size() / kDim}, {"rows", rows}, {"parallel", parallel},
          {"faiss", faiss}, {"hnswlib", hnsw}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path, queries_path, model_dir = "../shared/fixtures/devmodel", headers = "/usr/include";
  std::vector<std::size_t> sizes = {4096};
  std::size_t queries = 32;
  bool synthetic = true;
  CLI::App app{
      "bench_index: recall@10 and query time of the compressed embedding index against brute "
      "force, on "
      "per-token hidden states of the devmodel over header text (and random unit vectors)"};
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_option("--model", model_dir,
                 "the devmodel folder (config.json, model.safetensors, windows.bin)");
  app.add_option("--headers", headers, "folder of C/C++ headers the corpus text comes from");
  app.add_option("--cache", g_cache_dir, "where corpora (and snapshots, briefly) are kept");
  app.add_option("--save-queries", queries_path,
                 "also write the model's queries here (raw f32, dim 768), for profiling");
  app.add_option("--n-vectors", sizes, "corpus sizes")->delimiter(',');
  app.add_option("--queries", queries, "queries per set");
  app.add_option("--coarse", g_coarse,
                 "candidates the sign stage keeps, for the two-stage rows (default: 1%, 3% and "
                 "10% of each set)")
      ->delimiter(',');
  app.add_flag("--full,!--no-full", g_full, "measure the one-stage scans too (default on)");
  app.add_flag("--faiss,!--no-faiss", g_faiss,
               "measure FAISS and hnswlib beside (default on, when built)");
  app.add_flag("--peers-on-random", g_peers_on_random,
               "also build the IVF and graph peers on the random sets (their builds crawl there: "
               "minutes at 32,768 vectors)");
  app.add_flag("--synthetic,!--no-synthetic", synthetic,
               "also measure random unit vectors of the same sizes");
  CLI11_PARSE(app, argc, argv);

  json sets = json::array();
  if (std::filesystem::exists(model_dir + "/config.json")) {
    auto model = agp::fidelity::LlamaModel::load(model_dir);
    if (!model) die("--model: " + model.status().to_string());
    auto eval = agp::fidelity::Windows::from_bytes(model_dir + "/windows.bin", kWindow, 1 << 20);
    if (!eval) die("windows.bin: " + eval.status().to_string());
    const auto q = model_queries(*model, eval->windows, queries);
    if (!queries_path.empty()) {
      std::ofstream(queries_path, std::ios::binary)
          .write(reinterpret_cast<const char*>(q.data()),
                 static_cast<std::streamsize>(q.size() * sizeof(float)));
    }
    for (const std::size_t n : sizes) {
      json text;
      const auto data = corpus(*model, headers, eval->windows, n, g_cache_dir, text);
      json set = measure_set("devmodel-" + std::to_string(n), data, q);
      set["text"] = text;
      sets.push_back(std::move(set));
    }
  } else {
    std::cerr << kTool << ": no devmodel at " << model_dir << ": the model rows are skipped\n";
  }
  if (synthetic) {
    const auto q = random_units(queries, 2);
    for (const std::size_t n : sizes)
      sets.push_back(measure_set("random-" + std::to_string(n), random_units(n, 1), q));
  }
  json doc = {
      {"suite", "index"},
      {"date", agp::bench::utc_now()},
      {"command", "./dev bench index"},
      {"corpus",
       "devmodel states entering layer 2 and leaving layer 4, concatenated (768), normalized; "
       "text: header windows of 256 bytes; queries: windows.bin tokens"},
      {"query_time", "one query at a time, one thread, after 8 untimed queries"},
      {"sets", sets}};
  agp::bench::emit_results(doc.dump(2), out_path, kTool);
  return 0;
}
