// ./dev bench ptp: framing cost of the seed packet at 4 bits (a 163,840-byte body) against memcpy
// of the same bytes, measured in the same run. Goal (issue "Foundation and the PTP packet format"):
// build + verify + checksum at most 2x the memcpy time and under 20 us on one core.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/mapped_file.hpp"

namespace {

using namespace agp::ptp;

constexpr std::size_t kBodyBytes = 163840;  // [1,1280,1,256] at 4 bits per value

std::vector<std::byte> make_codes() {
  std::vector<std::byte> b(kBodyBytes);
  std::uint32_t x = 12345;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<std::byte>(x >> 24);
  }
  return b;
}

MessageHeader seed_header() {
  MessageHeader h;
  h.kind = MessageKind::kTensorPacket;
  h.sequence = 1;
  h.timestamp_ns = 1;
  h.fingerprint = {1, 2};
  h.model_id = "seed";
  h.split_layer = 2;
  h.tensor = TensorDesc{"hidden", agp::DType::kF16, {1, 1280, 1, 256}, Layout::kBC1S, 1};
  h.codec = CodecDesc{CodecId::kTurboQuantMse,
                      4,
                      RotationKind::kBlockWalshHadamard,
                      7,
                      256,
                      1,
                      1,
                      agp::DType::kF16,
                      LosslessKind::kNone,
                      0,
                      655360};
  return h;
}

struct Fixture {
  std::vector<std::byte> codes = make_codes();
  MessageHeader header = seed_header();
  SectionInput section{SectionKind::kCodes, codes, std::nullopt};
  std::vector<std::byte> wire;
  Fixture() {
    FrameBuilder b;
    wire = b.build(header, std::span(&section, 1))->flatten();
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_Memcpy(benchmark::State& st) {
  const auto& src = fixture().codes;
  std::vector<std::byte> dst(src.size());
  for (auto _ : st) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

// One XXH3-64 pass over the body: the floor under each side's framing cost.
void BM_Xxh3Body(benchmark::State& st) {
  const auto& src = fixture().codes;
  for (auto _ : st) benchmark::DoNotOptimize(xxh3_64(src));
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

void BM_FrameBuild(benchmark::State& st) {
  Fixture& f = fixture();
  FrameBuilder b;
  for (auto _ : st) {
    auto g = b.build(f.header, std::span(&f.section, 1));
    benchmark::DoNotOptimize(g->total_bytes);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

void BM_FrameVerify(benchmark::State& st) {
  Fixture& f = fixture();
  for (auto _ : st) {
    auto v = parse_frame(f.wire);
    if (!v) st.SkipWithError("verify failed");
    benchmark::DoNotOptimize(v->frame_bytes);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

// The goal metric: sender builds (section checksum + header + header checksum) and the receiver
// verifies (prefix, header checksum, Verifier, rules, section checksum) the same frame.
void BM_FrameBuildVerify(benchmark::State& st) {
  Fixture& f = fixture();
  FrameBuilder b;
  for (auto _ : st) {
    auto g = b.build(f.header, std::span(&f.section, 1));
    benchmark::DoNotOptimize(g->total_bytes);
    auto v = parse_frame(f.wire);
    if (!v) st.SkipWithError("verify failed");
    benchmark::DoNotOptimize(v->frame_bytes);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

// The receive path a socket drives: 64 KiB reads copied into the push decoder, then verified.
void BM_PushDecoder64K(benchmark::State& st) {
  Fixture& f = fixture();
  FrameDecoder d;
  for (auto _ : st) {
    for (std::size_t pos = 0; pos < f.wire.size();) {
      auto used = d.consume(
          std::span(f.wire).subspan(pos, std::min<std::size_t>(65536, f.wire.size() - pos)));
      if (!used) st.SkipWithError("decode failed");
      pos += *used;
    }
    Frame frame = d.take_frame();
    benchmark::DoNotOptimize(frame.body().data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kBodyBytes));
}

constexpr int kRepetitions = 7;
BENCHMARK(BM_Memcpy)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_Xxh3Body)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_FrameBuild)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_FrameVerify)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_FrameBuildVerify)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_PushDecoder64K)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(kRepetitions)
    ->ReportAggregatesOnly(true);

// Prints the usual console table and keeps each benchmark's median for the summary.
class MedianCollector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.aggregate_name == "median")
        medians_us[r.run_name.function_name] = r.GetAdjustedRealTime();
    }
  }
  std::map<std::string, double> medians_us;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--out=", 0) == 0) {
      out_path = a.substr(6);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "bench_ptp [--out=FILE.json] [Google Benchmark flags]\n"
          "Times framing of a 163,840-byte body (the seed packet at 4 bits) against memcpy "
          "of the same bytes; medians of %d repetitions; writes a summary JSON to FILE.\n",
          kRepetitions);
      return 0;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
  MedianCollector reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const auto& m = reporter.medians_us;
  auto get = [&](const char* name) {
    auto it = m.find(name);
    return it == m.end() ? -1.0 : it->second;
  };
  const double memcpy_us = get("BM_Memcpy");
  const double frame_us = get("BM_FrameBuildVerify");
  if (memcpy_us <= 0 || frame_us <= 0) {
    std::fprintf(stderr, "bench_ptp: the memcpy or build+verify benchmark did not run\n");
    return 1;
  }
  const double hash_us = get("BM_Xxh3Body");
  const double ratio = frame_us / memcpy_us;
  const bool ratio_ok = ratio <= 2.0;
  const bool time_ok = frame_us < 20.0;
  std::printf(
      "\nframing (build + verify + checksums) %.2f us, memcpy %.2f us: ratio %.2fx "
      "(goal <= 2.0x: %s), absolute goal < 20 us: %s\n",
      frame_us, memcpy_us, ratio, ratio_ok ? "met" : "MISSED", time_ok ? "met" : "MISSED");
  std::printf(
      "checksum floor: one XXH3 pass over the body is %.2f us (%.2fx memcpy); sender and "
      "receiver each make one, so %.2fx of the ratio is hashing alone\n",
      hash_us, hash_us / memcpy_us, 2 * hash_us / memcpy_us);

  if (!out_path.empty()) {
    std::string json = "{\n  \"suite\": \"ptp\",\n  \"date\": \"" + utc_now() + "\",\n";
    json += "  \"body_bytes\": " + std::to_string(kBodyBytes) +
            ",\n  \"repetitions\": " + std::to_string(kRepetitions) + ",\n  \"median_us\": {";
    bool first = true;
    for (const auto& [name, us] : m) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s\n    \"%s\": %.3f", first ? "" : ",", name.c_str(), us);
      json += buf;
      first = false;
    }
    char summary[512];
    std::snprintf(
        summary, sizeof summary,
        "\n  },\n  \"summary\": {\n    \"memcpy_us\": %.3f,\n    \"build_verify_us\": %.3f,\n"
        "    \"xxh3_pass_us\": %.3f,\n    \"ratio_vs_memcpy\": %.3f,\n    \"goal_ratio_max\": "
        "2.0,\n    \"goal_us_max\": 20.0,\n"
        "    \"ratio_goal_met\": %s,\n    \"time_goal_met\": %s\n  }\n}\n",
        memcpy_us, frame_us, hash_us, ratio, ratio_ok ? "true" : "false",
        time_ok ? "true" : "false");
    json += summary;
    if (auto s = write_file(out_path, std::as_bytes(std::span(json.data(), json.size()))); !s) {
      std::fprintf(stderr, "bench_ptp: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("wrote %s\n", out_path.c_str());
  }
  return 0;
}
