// ptp-index: builds, searches, inspects and exports compressed embedding index snapshots
// (docs/index.md), and reproduces the seed plan's phase-1 benchmark beside its printed numbers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "agp/codec/codec.hpp"
#include "agp/index/index.hpp"
#include "agp/index/vector_file.hpp"
#include "common/json_text.hpp"
#include "common/progress.hpp"
#include "common/tool_support.hpp"

namespace {

using namespace agp;
using namespace agp::tools;
using index::Index;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kTool = "ptp-index";

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The vector file type: --format, or the file's extension.
Result<index::VectorFormat> format_of(const std::string& path, const std::string& format) {
  if (format == "auto") return index::vector_format_of(path);
  return format == "jsonl" ? index::VectorFormat::kJsonl
         : format == "npy" ? index::VectorFormat::kNpy
                           : index::VectorFormat::kRawF32;
}

// Reads a vector file; a type that cannot be told or raw f32 without --dim is a usage error.
Result<index::VectorSet> load(const std::string& path, const std::string& format,
                              std::uint32_t dim) {
  auto f = format_of(path, format);
  if (!f) return f.status();
  if (*f == index::VectorFormat::kRawF32 && dim == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      path + ": raw f32 vectors need --dim (the values per vector)");
  }
  return index::read_vectors(path, *f, dim);
}

// Exit code for a failed load: usage (2) for what the command line got wrong, else 1.
int load_failed(const Status& s) {
  return fail(kTool, s.to_string(),
              s.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure);
}

void add_format_option(CLI::App& app, std::string& format) {
  app.add_option("--format", format,
                 "vector file type: auto (by extension: .jsonl/.json/.ndjson, .npy, "
                 ".f32/.bin/.raw), jsonl, npy or f32")
      ->check(CLI::IsMember({"auto", "jsonl", "npy", "f32"}))
      ->capture_default_str();
}

// ---- build ----

struct BuildOptions {
  std::string input, output, format = "auto";
  std::uint32_t dim = 0;
  int bits = 4;
  std::uint64_t seed = 0x5eed;
  bool no_exact = false, plain = false, center = false, json = false, quiet = false;
};

int build(const BuildOptions& o) {
  const auto t0 = Clock::now();
  {
    std::error_code ec;
    if (std::filesystem::equivalent(o.input, o.output, ec)) {
      return fail(kTool, "-o " + o.output + " is the input file: refusing to overwrite it", kExitUsage);
    }
  }
  auto set = load(o.input, o.format, o.dim);
  if (!set) return load_failed(set.status());
  auto index = Index::create(set->dim, {o.bits, o.seed, !o.no_exact, !o.plain, o.center});
  if (!index) return fail(kTool, index.status().to_string(), kExitUsage);
  const std::uint64_t n = set->count();
  constexpr std::uint64_t kBatch = 8192;
  Progress progress("adding", n, o.quiet);
  for (std::uint64_t first = 0; first < n; first += kBatch) {
    const std::uint64_t count = std::min(kBatch, n - first);
    const auto rows =
        std::span<const float>(set->values).subspan(first * set->dim, count * set->dim);
    if (auto s = index->add(rows); !s) {
      return fail(kTool,
                  o.input + ": vector " + std::to_string(first) + " onwards: " + s.to_string());
    }
    progress.update(first + count);
  }
  progress.finish();
  if (auto s = index->save(o.output); !s) return fail(kTool, s.to_string());
  const double ms = ms_since(t0);
  const double bpd = index->code_bits_per_dimension();
  const auto bytes = std::filesystem::file_size(o.output);
  json j = {{"output", o.output},
            {"vectors", n},
            {"dim", set->dim},
            {"bits", o.bits},
            {"code_bits_per_dimension", bpd},
            {"ratio_vs_fp32", 32.0 / bpd},
            {"exact_copies", !o.no_exact},
            {"file_bytes", bytes},
            {"build_ms", ms}};
  if (o.json) {
    std::cout << json_text(j, 2) << "\n";
  } else {
    std::printf(
        "%s: %llu vectors of %u at %d bits (%.3f bits per dimension, %.2fx smaller than "
        "fp32%s), %.1f MB, in %.0f ms\n",
        o.output.c_str(), static_cast<unsigned long long>(n), set->dim, o.bits, bpd, 32.0 / bpd,
        o.no_exact ? "" : "; fp16 copies for rerank beside", static_cast<double>(bytes) / 1e6, ms);
  }
  return 0;
}

// ---- search ----

struct SearchOptions {
  std::string index, queries, format = "auto";
  std::size_t k = 10, rerank = 0;
  std::string coarse = "auto";
  bool no_verify = false, json = false;
};

int search(const SearchOptions& o) {
  std::size_t coarse = index::SearchOptions::kAutoCoarse;
  if (o.coarse != "auto") {
    try {
      std::size_t used = 0;
      const unsigned long long v = std::stoull(o.coarse, &used);
      if (used != o.coarse.size() || o.coarse[0] == '-') throw std::invalid_argument(o.coarse);
      coarse = static_cast<std::size_t>(std::min<unsigned long long>(v, 1ull << 40));
    } catch (const std::exception&) {
      return fail(kTool, "--coarse: 'auto' or a number of candidates, got '" + o.coarse + "'",
                  kExitUsage);
    }
  }
  auto index = Index::open(o.index, !o.no_verify);
  if (!index) return fail(kTool, index.status().to_string());
  auto queries = load(o.queries, o.format, index->dim());
  if (!queries) return load_failed(queries.status());
  if (queries->dim != index->dim()) {
    return fail(kTool, o.queries + ": queries of " + std::to_string(queries->dim) +
                           " values, the index holds " + std::to_string(index->dim()));
  }
  json out = json::array();
  for (std::uint64_t qi = 0; qi < queries->count(); ++qi) {
    const auto q = std::span<const float>(queries->values).subspan(qi * index->dim(), index->dim());
    const auto t0 = Clock::now();
    auto hits = index->search(q, {o.k, o.rerank, coarse});
    const double ms = ms_since(t0);
    if (!hits) return fail(kTool, "query " + std::to_string(qi) + ": " + hits.status().to_string());
    json row = {{"query", qi}, {"ms", ms}, {"hits", json::array()}};
    for (const auto& h : *hits) row["hits"].push_back({{"id", h.id}, {"score", h.score}});
    if (!o.json) {
      std::printf("query %llu (%.3f ms):", static_cast<unsigned long long>(qi), ms);
      for (const auto& h : *hits)
        std::printf(" %llu:%.4f", static_cast<unsigned long long>(h.id),
                    static_cast<double>(h.score));
      std::printf("\n");
    }
    out.push_back(std::move(row));
  }
  if (o.json) std::cout << json_text(out, 2) << "\n";
  return 0;
}

// ---- inspect ----

int inspect(const std::string& path, bool as_json) {
  auto info = Index::inspect(path);
  if (!info) return fail(kTool, info.status().to_string());
  const double dim = info->dim ? info->dim : 1;
  std::uint64_t code_bytes = 0;
  for (const auto& s : info->sections)
    if (s.kind != "exact_f16") code_bytes += s.bytes;
  const double bpd = info->vectors ? 8.0 * static_cast<double>(code_bytes) /
                                         (static_cast<double>(info->vectors) * dim)
                                   : 0.0;
  json j = {{"path", path},
            {"ok", info->status.is_ok()},
            {"version", info->version},
            {"vectors", info->vectors},
            {"dim", info->dim},
            {"bits", info->bits},
            {"unbiased_scores", info->unbiased},
            {"centered", info->centered},
            {"exact_copies", info->exact},
            {"rotation_seed", info->seed},
            {"file_bytes", info->file_bytes},
            {"code_bits_per_dimension", bpd},
            {"ratio_vs_fp32", bpd > 0 ? 32.0 / bpd : 0.0},
            {"sections", json::array()}};
  for (const auto& s : info->sections) {
    j["sections"].push_back({{"kind", s.kind},
                             {"offset", s.offset},
                             {"bytes", s.bytes},
                             {"checksum_ok", s.checksum_ok}});
  }
  if (!info->status) j["error"] = info->status.to_string();
  if (as_json) {
    std::cout << json_text(j, 2) << "\n";
  } else {
    std::printf("%s: %s\n", path.c_str(), info->status ? "ok" : info->status.to_string().c_str());
    std::printf("  version %u, %llu vectors of %u, %d bits, %s%s scores, %s\n", info->version,
                static_cast<unsigned long long>(info->vectors), info->dim, info->bits,
                info->centered ? "centered, " : "", info->unbiased ? "unbiased" : "plain",
                info->exact ? "fp16 copies kept" : "no exact copies");
    std::printf(
        "  codes and norms %.3f bits per dimension, %.2fx smaller than fp32; file %llu "
        "bytes; rotation seed %llu\n",
        bpd, bpd > 0 ? 32.0 / bpd : 0.0, static_cast<unsigned long long>(info->file_bytes),
        static_cast<unsigned long long>(info->seed));
    std::printf("  %-13s %12s %14s  %s\n", "section", "offset", "bytes", "checksum");
    for (const auto& s : info->sections) {
      std::printf("  %-13s %12llu %14llu  %s\n", s.kind.c_str(),
                  static_cast<unsigned long long>(s.offset),
                  static_cast<unsigned long long>(s.bytes), s.checksum_ok ? "ok" : "BAD");
    }
  }
  return info->status ? 0 : kExitFailure;
}

// ---- export ----

int export_vectors(const std::string& index_path, const std::string& output,
                   const std::string& format, bool quiet, bool as_json) {
  auto f = format_of(output, format);
  if (!f) return fail(kTool, f.status().to_string(), kExitUsage);
  const auto t0 = Clock::now();
  auto index = Index::open(index_path);
  if (!index) return fail(kTool, index.status().to_string());
  std::vector<float> all(index->size() * index->dim());
  Progress progress("exporting", index->size(), quiet);
  constexpr std::uint64_t kBatch = 8192;
  for (std::uint64_t first = 0; first < index->size(); first += kBatch) {
    const std::uint64_t count = std::min(kBatch, index->size() - first);
    if (auto s = index->vectors(first, count,
                                std::span(all).subspan(first * index->dim(), count * index->dim()));
        !s) {
      return fail(kTool, s.to_string());
    }
    progress.update(first + count);
  }
  progress.finish();
  if (auto s = index::write_vectors(output, *f, all, index->dim()); !s)
    return fail(kTool, s.to_string());
  if (as_json) {
    std::cout << json_text(json{{"output", output},
                                {"vectors", index->size()},
                                {"dim", index->dim()},
                                {"exact_copies", index->options().keep_exact},
                                {"export_ms", ms_since(t0)}},
                           2)
              << "\n";
  }
  return 0;
}

// ---- bench: the seed plan's phase-1 harness ----

struct BenchOptions {
  std::uint64_t n_vectors = 4096;
  std::size_t queries = 32;
  std::string activation_shape = "1,1280,1,256";
  std::vector<int> bits = {4, 8};
  std::string input;  // real vectors instead of random ones (queries are drawn from them)
  std::string format = "auto";
  std::string markdown;
  std::uint64_t seed = 1;
  bool json = false;
};

// What the plan printed (../shared/seed/, "First AGP Benchmark Harness Result").
struct PlanRow {
  int bits;
  double recall, cosine, ratio, ms, packed_mb, prototype_mb;
};
constexpr PlanRow kPlan[] = {{4, 0.859, 0.993, 5.91, 7.283, 2.1, 12.6},
                             {8, 0.981, 1.000, 2.98, 7.245, 4.2, 12.6}};

std::vector<float> gaussian(std::uint64_t n, std::uint32_t dim, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * dim);
  for (auto& x : v) x = g(rng);
  return v;
}

void normalize_rows(std::vector<float>& v, std::uint32_t dim) {
  for (std::size_t i = 0; i < v.size() / dim; ++i) {
    double ss = 0;
    for (std::uint32_t k = 0; k < dim; ++k) ss += double{v[i * dim + k]} * v[i * dim + k];
    const float inv = ss > 0 ? static_cast<float>(1 / std::sqrt(ss)) : 0.0f;
    for (std::uint32_t k = 0; k < dim; ++k) v[i * dim + k] *= inv;
  }
}

std::vector<std::vector<std::uint64_t>> exact_top10(const std::vector<float>& data,
                                                    const std::vector<float>& queries,
                                                    std::uint32_t dim) {
  std::vector<std::vector<std::uint64_t>> out;
  const std::size_t n = data.size() / dim;
  std::vector<std::pair<float, std::uint64_t>> scored(n);
  for (std::size_t q = 0; q < queries.size() / dim; ++q) {
    for (std::size_t i = 0; i < n; ++i) {
      float dot = 0;
      for (std::uint32_t k = 0; k < dim; ++k) dot += data[i * dim + k] * queries[q * dim + k];
      scored[i] = {-dot, i};
    }
    const std::size_t k = std::min<std::size_t>(10, n);
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k),
                      scored.end());
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < k; ++i) ids.push_back(scored[i].second);
    out.push_back(std::move(ids));
  }
  return out;
}

Result<json> embedding_row(const std::vector<float>& data, const std::vector<float>& queries,
                           const std::vector<std::vector<std::uint64_t>>& truth, std::uint32_t dim,
                           int bits) {
  auto index = Index::create(dim, {bits, 0x5eed, false});
  if (!index) return index.status();
  AGP_RETURN_IF_ERROR(index->add(data));
  const std::uint64_t n = index->size();
  std::vector<float> decoded(n * dim);
  AGP_RETURN_IF_ERROR(index->vectors(0, n, decoded));
  double cosine = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    double dot = 0;
    for (std::uint32_t k = 0; k < dim; ++k) dot += double{data[i * dim + k]} * decoded[i * dim + k];
    cosine += dot;  // both unit length
  }
  std::vector<double> ms;
  std::size_t found = 0;
  for (std::size_t q = 0; q < truth.size(); ++q) {
    const auto t0 = Clock::now();
    auto hits = index->search(std::span(queries).subspan(q * dim, dim), {10});
    ms.push_back(ms_since(t0));
    if (!hits) return hits.status();
    for (const auto& h : *hits)
      found += std::count(truth[q].begin(), truth[q].end(), h.id) > 0 ? 1 : 0;
  }
  const double packed_mb = index->code_bits_per_dimension() * static_cast<double>(n * dim) / 8e6;
  return json{{"bits", bits},
              {"recall_at_10", static_cast<double>(found) / static_cast<double>(10 * truth.size())},
              {"mean_cosine", cosine / static_cast<double>(n)},
              {"ratio_vs_fp32", 32.0 / index->code_bits_per_dimension()},
              {"ms_per_query", percentile(ms, 0.5)},
              {"ms_per_query_p95", percentile(ms, 0.95)},
              {"packed_mb", packed_mb},
              {"fp32_mb", static_cast<double>(n * dim) * 4 / 1e6}};
}

Result<json> activation_row(const std::vector<std::uint64_t>& shape, std::uint64_t seed) {
  // The plan's packet: N(0,1) values as fp16, 4-bit TurboQuant along the channel axis.
  const std::uint32_t axis = default_vector_axis(shape);
  Generator gen;
  gen.seed = seed;
  const std::vector<std::byte> f16 = gen.make(0, shape, DType::kF16, axis);
  const auto in = codec::TensorView::contiguous(f16.data(), DType::kF16, shape, axis);
  codec::CodecConfig c;
  c.id = CodecId::kTurboQuantMse;
  c.bits = 4;
  auto codec = codec::make_codec(c, static_cast<std::uint32_t>(shape[axis]));
  if (!codec) return codec.status();
  const std::uint64_t vectors = in.vector_count();
  std::vector<std::vector<std::byte>> parts;
  std::vector<std::span<std::byte>> spans;
  for (const auto& p : (*codec)->parts()) {
    parts.emplace_back(vectors * p.bytes_per_vector);
    spans.emplace_back(parts.back());
  }
  std::vector<std::span<const std::byte>> cspans(spans.begin(), spans.end());
  std::vector<std::uint16_t> out(f16.size() / 2);
  const auto dst = codec::TensorView::contiguous(out.data(), DType::kF16, shape, axis);
  std::vector<double> enc, dec;
  for (int rep = 0; rep < 21; ++rep) {
    auto t0 = Clock::now();
    AGP_RETURN_IF_ERROR((*codec)->encode_all(in, spans));
    enc.push_back(ms_since(t0));
    t0 = Clock::now();
    AGP_RETURN_IF_ERROR((*codec)->decode_all(cspans, dst));
    dec.push_back(ms_since(t0));
  }
  double se = 0, max_abs = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint16_t h;
    std::memcpy(&h, f16.data() + 2 * i, 2);
    const double d = static_cast<double>(f16_to_f32(out[i])) - f16_to_f32(h);
    se += d * d;
    max_abs = std::max(max_abs, std::fabs(d));
  }
  std::uint64_t packed = 0;
  for (const auto& p : parts) packed += p.size();
  return json{{"shape", shape},
              {"fp16_bytes", f16.size()},
              {"packed_bytes", packed},
              {"ratio_vs_fp16", static_cast<double>(f16.size()) / static_cast<double>(packed)},
              {"mse", se / static_cast<double>(out.size())},
              {"max_abs_error", max_abs},
              {"compress_ms", percentile(enc, 0.5)},
              {"decompress_ms", percentile(dec, 0.5)}};
}

std::string markdown_tables(const json& r) {
  std::ostringstream md;
  char line[512];
  md << "Embedding candidate generation (" << r["embedding"]["vectors"].get<std::uint64_t>()
     << " x " << r["embedding"]["dim"].get<std::uint32_t>() << ", "
     << r["embedding"]["queries"].get<std::size_t>() << " queries, "
     << r["embedding"]["data"].get<std::string>() << "; plan's figures in brackets):\n\n";
  md << "| bits | recall@10 | mean cosine | ratio fp32 | per query ms | packed MB | prototype MB "
        "|\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& row : r["embedding"]["rows"]) {
    const int bits = row["bits"];
    const PlanRow* plan = nullptr;
    for (const auto& p : kPlan)
      if (p.bits == bits) plan = &p;
    auto bracket = [&](double v, const char* fmt) {
      if (!plan) return std::string();
      char b[32];
      std::snprintf(b, sizeof b, fmt, v);
      return " (" + std::string(b) + ")";
    };
    std::snprintf(
        line, sizeof line, "| %d | %.3f%s | %.3f%s | %.2fx%s | %.3f%s | %.1f%s | %s |\n", bits,
        row["recall_at_10"].get<double>(), bracket(plan ? plan->recall : 0, "%.3f").c_str(),
        row["mean_cosine"].get<double>(), bracket(plan ? plan->cosine : 0, "%.3f").c_str(),
        row["ratio_vs_fp32"].get<double>(), bracket(plan ? plan->ratio : 0, "%.2fx").c_str(),
        row["ms_per_query"].get<double>(), bracket(plan ? plan->ms : 0, "%.3f").c_str(),
        row["packed_mb"].get<double>(), bracket(plan ? plan->packed_mb : 0, "%.1f").c_str(),
        plan ? ("none (" + std::to_string(plan->prototype_mb).substr(0, 4) + ")").c_str() : "none");
    md << line;
  }
  const json& a = r["activation"];
  md << "\nActivation packet compression (4-bit TurboQuant, N(0,1) values in fp16; plan's figures "
        "in brackets):\n\n";
  md << "| shape | fp16 bytes | packed bytes | ratio | MSE | max abs error | compress ms | "
        "decompress ms |\n|---|---|---|---|---|---|---|---|\n";
  std::string shape;
  for (const auto& d : a["shape"])
    shape += (shape.empty() ? "" : ",") + std::to_string(d.get<std::uint64_t>());
  const bool plan_shape = shape == "1,1280,1,256";
  std::snprintf(
      line, sizeof line, "| %s | %llu%s | %llu%s | %.2fx%s | %.6f%s | %.4f%s | %.3f%s | %.3f%s |\n",
      shape.c_str(), static_cast<unsigned long long>(a["fp16_bytes"].get<std::uint64_t>()),
      plan_shape ? " (655360)" : "",
      static_cast<unsigned long long>(a["packed_bytes"].get<std::uint64_t>()),
      plan_shape ? " (163848)" : "", a["ratio_vs_fp16"].get<double>(), plan_shape ? " (4.0x)" : "",
      a["mse"].get<double>(), plan_shape ? " (0.036517)" : "", a["max_abs_error"].get<double>(),
      plan_shape ? " (0.3320)" : "", a["compress_ms"].get<double>(), plan_shape ? " (0.807)" : "",
      a["decompress_ms"].get<double>(), plan_shape ? " (0.345)" : "");
  md << line;
  return md.str();
}

int bench(const BenchOptions& o, const std::string& command) {
  auto shape = parse_shape(o.activation_shape);
  if (!shape) return fail(kTool, "--activation-shape: " + shape.status().message(), kExitUsage);
  std::uint32_t dim = 768;
  std::vector<float> data, queries;
  std::string data_label =
      "random normal vectors, normalized (seed " + std::to_string(o.seed) + ")";
  if (!o.input.empty()) {
    auto set = load(o.input, o.format, 0);
    if (!set) return load_failed(set.status());
    if (set->count() < o.n_vectors + o.queries) {
      return fail(kTool, o.input + ": " + std::to_string(set->count()) +
                             " vectors, the run needs " + std::to_string(o.n_vectors + o.queries) +
                             " (--n-vectors plus --queries, which are held out)");
    }
    dim = set->dim;
    data.assign(set->values.begin(),
                set->values.begin() + static_cast<std::ptrdiff_t>(o.n_vectors * dim));
    queries.assign(set->values.end() - static_cast<std::ptrdiff_t>(o.queries * dim),
                   set->values.end());
    data_label = o.input + " (the last " + std::to_string(o.queries) + " rows are the queries)";
  } else {
    data = gaussian(o.n_vectors, dim, o.seed);
    queries = gaussian(o.queries, dim, o.seed + 1);
  }
  normalize_rows(data, dim);
  normalize_rows(queries, dim);
  const auto truth = exact_top10(data, queries, dim);
  json rows = json::array();
  for (const int bits : o.bits) {
    auto row = embedding_row(data, queries, truth, dim, bits);
    if (!row) return fail(kTool, row.status().to_string());
    rows.push_back(*row);
  }
  auto act = activation_row(*shape, o.seed);
  if (!act) return fail(kTool, "activation packet: " + act.status().to_string());
  json r = {{"tool", kTool},
            {"command", command},
            {"embedding",
             {{"vectors", o.n_vectors},
              {"dim", dim},
              {"queries", o.queries},
              {"data", data_label},
              {"search", "one query at a time, one thread, default search options"},
              {"rows", rows}}},
            {"activation", *act},
            {"plan",
             {{"source", "../shared/seed/agp-turboquant-ane-performance-plan.txt"},
              {"embedding",
               {{{"bits", 4},
                 {"recall_at_10", 0.859},
                 {"mean_cosine", 0.993},
                 {"ratio_vs_fp32", 5.91},
                 {"ms_per_query", 7.283},
                 {"packed_mb", 2.1},
                 {"prototype_mb", 12.6}},
                {{"bits", 8},
                 {"recall_at_10", 0.981},
                 {"mean_cosine", 1.0},
                 {"ratio_vs_fp32", 2.98},
                 {"ms_per_query", 7.245},
                 {"packed_mb", 4.2},
                 {"prototype_mb", 12.6}}}},
              {"activation",
               {{"fp16_bytes", 655360},
                {"packed_bytes", 163848},
                {"ratio_vs_fp16", 4.0},
                {"mse", 0.03651738},
                {"max_abs_error", 0.332031},
                {"compress_ms", 0.807},
                {"decompress_ms", 0.345}}}}}};
  const std::string md = markdown_tables(r);
  if (!o.markdown.empty()) {
    std::ofstream out(o.markdown);
    out << "# " << command << "\n\n" << md;
    if (!out) return fail(kTool, "cannot write " + o.markdown);
  }
  if (o.json) {
    std::cout << json_text(r, 2) << "\n";
  } else {
    std::cout << md;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ptp-index: compressed embedding index snapshots (docs/index.md). Vectors are stored as "
      "TurboQuant codes in bit planes and searched by inner product (cosine: every vector and "
      "query is normalized), the sign bits first, then whole codes for the best candidates, then "
      "optionally an exact rerank against fp16 copies."};
  app.require_subcommand(1);

  BuildOptions b;
  auto* build_cmd = app.add_subcommand("build", "build a snapshot from a vector file");
  build_cmd
      ->add_option("-i,--input", b.input,
                   "vectors: .jsonl (rows: a bare array, or an object "
                   "with embedding, vector, values or "
                   "embedding_vector), .npy (f32/f16 [n, dim]) or raw "
                   ".f32 (with --dim)")
      ->required();
  build_cmd->add_option("-o,--output", b.output, "the snapshot to write")->required();
  add_format_option(*build_cmd, b.format);
  build_cmd->add_option("--dim", b.dim, "values per vector (raw .f32 input only)");
  build_cmd->add_option("--bits", b.bits, "bits per dimension, 1..8")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  build_cmd->add_option("--seed", b.seed, "the rotation's seed")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  build_cmd->add_flag("--no-exact", b.no_exact,
                      "do not keep fp16 copies (smaller, but no exact rerank)");
  build_cmd->add_flag("--center", b.center,
                      "code each vector's difference from the mean of the first 8,192 vectors "
                      "(for embeddings that share a strong common direction; docs/index.md)");
  build_cmd->add_flag("--plain-scores", b.plain,
                      "score with the codec's decode as is, without the per-vector unbiasing "
                      "factor (docs/index.md)");
  build_cmd->add_flag("--json", b.json, "print one JSON document");
  build_cmd->add_flag("-q,--quiet", b.quiet, "no progress bar");

  SearchOptions s;
  auto* search_cmd = app.add_subcommand("search", "search a snapshot with query vectors");
  search_cmd->add_option("--index", s.index, "the snapshot")->required();
  search_cmd->add_option("--queries", s.queries, "query vectors (a vector file, as for build)")
      ->required();
  add_format_option(*search_cmd, s.format);
  search_cmd->add_option("-k", s.k, "hits per query, 0..16777216")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24))
      ->capture_default_str();
  search_cmd
      ->add_option("--coarse", s.coarse,
                   "candidates the sign stage passes on to whole-code scoring: auto (those "
                   "within 3 times the first estimate's measured error of the k-th best), a "
                   "number (at least k are kept), or 0 (score every vector from its whole codes)")
      ->capture_default_str();
  search_cmd
      ->add_option("--rerank", s.rerank,
                   "candidates rescored exactly against the fp16 copies, 0..16777216 (0: none; "
                   "a snapshot built with --no-exact has no copies)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24))
      ->capture_default_str();
  search_cmd->add_flag("--no-verify", s.no_verify, "skip the snapshot's checksums when opening");
  search_cmd->add_flag("--json", s.json, "print one JSON document");

  std::string inspect_path;
  bool inspect_json = false;
  auto* inspect_cmd = app.add_subcommand(
      "inspect", "show a snapshot's header, sections and checksum status (exit 1 if damaged)");
  inspect_cmd->add_option("snapshot", inspect_path, "the snapshot")->required();
  inspect_cmd->add_flag("--json", inspect_json, "print one JSON document");

  std::string export_index, export_output, export_format = "auto";
  bool export_quiet = false, export_json = false;
  auto* export_cmd = app.add_subcommand(
      "export",
      "write a snapshot's vectors to a vector file: the fp16 copies when kept, else "
      "the decoded codes (unit length)");
  export_cmd->add_option("--index", export_index, "the snapshot")->required();
  export_cmd->add_option("-o,--output", export_output, "the vector file to write")->required();
  add_format_option(*export_cmd, export_format);
  export_cmd->add_flag("-q,--quiet", export_quiet, "no progress bar");
  export_cmd->add_flag("--json", export_json, "print what was written as one JSON document");

  BenchOptions e;
  auto* bench_cmd = app.add_subcommand(
      "bench",
      "the seed plan's phase-1 harness: embedding candidate generation and activation "
      "packet compression, printed beside the plan's own figures");
  bench_cmd->add_option("--n-vectors", e.n_vectors, "vectors in the index")
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{1} << 26))
      ->capture_default_str();
  bench_cmd->add_option("--queries", e.queries, "queries")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  bench_cmd
      ->add_option("--activation-shape", e.activation_shape,
                   "the activation packet's shape (channels along axis 1 for rank 4)")
      ->capture_default_str();
  bench_cmd->add_option("--bits", e.bits, "index widths to measure")
      ->delimiter(',')
      ->check(CLI::Range(1, 8));
  bench_cmd->add_option("--input", e.input,
                        "real vectors instead of random ones; the last --queries rows are the "
                        "queries");
  add_format_option(*bench_cmd, e.format);
  bench_cmd->add_option("--markdown", e.markdown, "also write the tables to this Markdown file");
  bench_cmd->add_option("--seed", e.seed, "seed of the random vectors and packet")
      ->capture_default_str();
  bench_cmd->add_flag("--json", e.json, "print one JSON document instead of the tables");

  if (auto code = parse_command_line(app, argc, argv, kTool)) return *code;
  try {
    if (*build_cmd) return build(b);
    if (*search_cmd) return search(s);
    if (*inspect_cmd) return inspect(inspect_path, inspect_json);
    if (*export_cmd)
      return export_vectors(export_index, export_output, export_format, export_quiet, export_json);
    if (*bench_cmd) return bench(e, command_line(kTool, argc, argv));
  } catch (const std::exception& ex) {  // allocation failures on absurd sizes, JSON output
    return fail(kTool, ex.what());
  }
  return kExitUsage;
}
