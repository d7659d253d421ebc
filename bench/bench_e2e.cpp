// End-to-end benchmark: the seed packet ([1,1280,1,256] fp16, 655,360 bytes) delivered through a
// Link (encode, send, receive, verify, decode into the receiver's buffer, acknowledge) as raw fp16,
// TurboQuant 4-bit and 8-bit and TurboQuant-EC 4-bit, interleaved packet by packet, over loopback
// and over veth pairs limited to 20 and 10 Gbit/s. Beside each p50: the stage times (encode, wire
// at the path's iperf3 rate, decode) and their sum, so the overlap achieved is visible. The "shm"
// path runs the receiver as a second process on this host and carries the packets over UCX's
// shared memory (its wire rate is ucx_perftest's stream bandwidth there). Writes
// bench/results/latest-e2e.json.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "agp/transport/link.hpp"
#if defined(AGP_HAVE_FIDELITY)
#include "agp/fidelity/calibrate.hpp"
#endif
#include "bench_paths.hpp"
#include "common/report.hpp"
#include "common/tool_support.hpp"

namespace {

using namespace std::chrono_literals;
using agp::bench::Path;
using agp::bench::percentile;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kTool = "bench_e2e";
// UCX's connection manager needs TCP beside shared memory (docs/transport.md).
constexpr const char* kSharedMemoryTransports = "sm,tcp";

[[noreturn]] void die(const std::string& why) {
  agp::bench::die(kTool, why);
}

struct Setup {
  bool shared_memory = false;  // the shm path: UCX with shared memory, receiver in its own process
  std::uint64_t chunk_vectors = 64;  // 4 chunks of the seed packet: measured best of 16-256
  std::uint16_t encode_threads = 1;
  std::uint16_t decode_threads = 1;
  std::uint32_t busy_poll_us = 0;
  // For cal2..cal8: a calibration from 8 other packets of the generator (N(0,1) packets are
  // the same in any basis, so they are sent as a folded model would hand them over).
  std::shared_ptr<const agp::codec::Calibration> calibration;
};

#if defined(AGP_HAVE_FIDELITY)
std::shared_ptr<const agp::codec::Calibration> seed_calibration() {
  const agp::tools::Generator gen{"gauss", 7};
  std::vector<float> states;
  for (std::uint64_t k = 100; k < 108; ++k) {
    const auto bytes = gen.make(k, {256, 1280}, agp::DType::kF32, 1);
    const auto* f = reinterpret_cast<const float*>(bytes.data());
    states.insert(states.end(), f, f + 256 * 1280);
  }
  auto c = agp::fidelity::calibrate_from_states(states.data(), states.size() / 1280, 1280, {});
  if (!c) die("calibration: " + c.status().to_string());
  return std::make_shared<const agp::codec::Calibration>(c->file.calibration);
}
#endif

agp::transport::LinkOptions link_options(const Setup& setup) {
  agp::transport::LinkOptions o;
  o.fingerprint = {0xe2e, 0x5eed};
  if (setup.calibration) {
    o.calibration = setup.calibration;
    o.fingerprint.lo ^= setup.calibration->id;  // both ends derive it alike
  }
  o.model_id = "bench-e2e";
  o.chunk_vectors = setup.chunk_vectors;
  o.encode_threads = setup.encode_threads;
  o.decode_threads = setup.decode_threads;
  o.busy_poll_us = setup.busy_poll_us;
  if (setup.shared_memory) {
    o.backend = agp::transport::TransportBackend::kUcx;
    o.ucx_transports = kSharedMemoryTransports;
  }
  return o;
}

struct Sample {
  std::string codec;
  double latency_us = 0, encode_us = 0;
  std::uint64_t bytes = 0;
};

// The receiving end: takes seed packets until the end marker (a packet of another shape) and
// returns each one's decode time by sequence.
std::map<std::uint64_t, double> receive_all(agp::transport::Link& link) {
  std::map<std::uint64_t, double> decode_us;
  std::vector<std::uint16_t> out(1280 * 256);
  for (;;) {
    auto next = link.next_packet(20000ms);
    if (!next) die("receiver: " + next.status().to_string());
    if (next->tensor->shape != std::vector<std::uint64_t>{1, 1280, 1, 256}) {
      std::vector<std::uint16_t> small(1);
      (void)link.receive(
          agp::codec::TensorView::contiguous(small.data(), agp::DType::kF16, next->tensor->shape, 1), 20000ms);
      break;
    }
    auto d = link.receive(
        agp::codec::TensorView::contiguous(out.data(), agp::DType::kF16, next->tensor->shape, 1), 20000ms);
    if (!d) die("receiver: " + d.status().to_string());
    decode_us[d->header.sequence] = d->decode_us;
  }
  (void)link.close(5000ms);
  return decode_us;
}

// The sending end: `warmup + iterations` seed packets per codec, interleaved packet by packet,
// then the end marker. The timed packets' samples by sequence.
std::map<std::uint64_t, Sample> send_all(agp::transport::Link& link, const std::vector<std::string>& codecs,
                                         int iterations, int warmup, const Setup& setup) {
  std::vector<agp::ptp::PacketCodec> packet_codecs;
  for (const auto& n : codecs) {
    auto c = agp::tools::parse_codec(n, agp::DType::kF16);
    if (!c) die(c.status().to_string());
    c->calibration = setup.calibration;
    packet_codecs.push_back(*c);
  }
  const agp::tools::Generator gen{"gauss", 7};
  const std::vector<std::uint64_t> shape = {1, 1280, 1, 256};
  std::vector<std::vector<std::byte>> tensors;
  for (int k = 0; k < 8; ++k) tensors.push_back(gen.make(static_cast<std::uint64_t>(k), shape, agp::DType::kF16, 1));
  std::map<std::uint64_t, Sample> samples;
  for (int i = 0; i < warmup + iterations; ++i) {
    const auto view = agp::codec::TensorView::contiguous(tensors[static_cast<std::size_t>(i) % tensors.size()].data(),
                                                         agp::DType::kF16, shape, 1);
    for (std::size_t c = 0; c < codecs.size(); ++c) {
      const auto t0 = Clock::now();
      auto r = link.send(view, packet_codecs[c], {"seed", 0, agp::ptp::Layout::kBC1S}, 20000ms);
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      if (!r) die("send: " + r.status().to_string());
      if (i >= warmup) samples[r->sequence] = {codecs[c], us, r->encode_us, r->wire_bytes};
    }
  }
  std::vector<std::uint16_t> one(1, 0);
  const auto raw = agp::tools::parse_codec("raw", agp::DType::kF16);
  (void)link.send(agp::codec::TensorView::contiguous(one.data(), agp::DType::kF16, {1, 1, 1, 1}, 1), *raw,
                  {"end", 0, {}}, 10000ms);
  (void)link.close(5000ms);
  return samples;
}

// The rows of one path: per codec, latency percentiles and the stage times beside them, with the
// wire time at `wire_gbps` (what the path's own baseline tool reached).
json summarize(const std::string& path_name, double wire_gbps, const std::vector<std::string>& codecs,
               const std::map<std::uint64_t, Sample>& samples, const std::map<std::uint64_t, double>& decode_us,
               const std::string& svg_dir) {
  json rows = json::array();
  double raw_p50 = 0;
  std::vector<agp::tools::Series> series;
  for (const auto& name : codecs) {
    std::vector<double> lat, enc, dec;
    std::uint64_t bytes = 0;
    for (const auto& [seq, s] : samples) {
      if (s.codec != name) continue;
      lat.push_back(s.latency_us);
      enc.push_back(s.encode_us);
      bytes = s.bytes;
      if (auto it = decode_us.find(seq); it != decode_us.end()) dec.push_back(it->second);
    }
    const double p50 = percentile(lat, 0.5);
    if (name == "raw") raw_p50 = p50;
    series.push_back({name, lat});
    const double wire_us = static_cast<double>(bytes) * 8.0 / (wire_gbps * 1e3);
    rows.push_back({{"codec", name},
                    {"packets", lat.size()},
                    {"bytes", bytes},
                    {"p50_us", p50},
                    {"p95_us", percentile(lat, 0.95)},
                    {"p99_us", percentile(lat, 0.99)},
                    {"encode_us_p50", percentile(enc, 0.5)},
                    {"wire_us_at_baseline_rate", wire_us},
                    {"decode_us_p50", percentile(dec, 0.5)},
                    {"stage_sum_us", percentile(enc, 0.5) + wire_us + percentile(dec, 0.5)}});
  }
  for (auto& r : rows) r["ratio_vs_raw_p50"] = raw_p50 > 0 ? r["p50_us"].get<double>() / raw_p50 : 0.0;
  if (!svg_dir.empty()) {  // the latency distribution of each codec on this path
    char title[128];
    std::snprintf(title, sizeof title, "seed packet delivery, %s (baseline %.1f Gbit/s)", path_name.c_str(),
                  wire_gbps);
    std::ofstream(svg_dir + "/e2e-" + path_name + ".svg") << agp::tools::latency_cdf_svg(series, title);
  }
  return rows;
}

// A network path: both ends are threads of this process, in the path's namespaces.
json measure(const Path& path, const std::vector<std::string>& codecs, int iterations, int warmup,
             const Setup& setup, double iperf_seconds, const std::string& svg_dir) {
  std::cerr << kTool << ": " << path.name << ": iperf3 ...\n";
  const double iperf = agp::bench::iperf3_gbps(path, 5301 + static_cast<int>(::getpid() % 1000),
                                               iperf_seconds, kTool);
  std::atomic<int> port{0};
  std::map<std::uint64_t, double> decode_us;
  std::thread receiver([&] {
    path.enter_server();
    auto server = agp::transport::Server::listen(path.server_address, 0, link_options(setup));
    if (!server) die(server.status().to_string());
    port = (*server)->port();
    auto link = (*server)->accept(10000ms);
    if (!link) die("accept: " + link.status().to_string());
    decode_us = receive_all(**link);
  });
  std::map<std::uint64_t, Sample> samples;
  std::thread sender([&] {
    path.enter_client();
    while (port == 0) std::this_thread::sleep_for(1ms);
    auto link = agp::transport::Link::connect(path.server_address, static_cast<std::uint16_t>(port.load()),
                                              link_options(setup));
    if (!link) die("connect: " + link.status().to_string());
    samples = send_all(**link, codecs, iterations, warmup, setup);
  });
  sender.join();
  receiver.join();
  json out = {{"path", path.name},
              {"tbf_burst", path.burst},
              {"iperf3_gbps", iperf},
              {"chunk_vectors", setup.chunk_vectors},
              {"encode_threads", setup.encode_threads},
              {"decode_threads", setup.decode_threads},
              {"busy_poll_us", setup.busy_poll_us},
              {"codecs", summarize(path.name, iperf, codecs, samples, decode_us, svg_dir)}};
  std::cerr << kTool << ": " << out.dump() << "\n";
  return out;
}

// --role shm-receiver: the receiving process of the shm path. Prints "port N" once it listens,
// then, after the end marker, the decode times as one JSON line.
int shm_receiver(const Setup& setup) {
  auto server = agp::transport::Server::listen("127.0.0.1", 0, link_options(setup));
  if (!server) die(server.status().to_string());
  std::cout << "port " << (*server)->port() << std::endl;
  auto link = (*server)->accept(20000ms);
  if (!link) die("accept: " + link.status().to_string());
  json j = json::array();
  for (const auto& [seq, us] : receive_all(**link)) j.push_back({seq, us});
  std::cout << j.dump() << std::endl;
  return 0;
}

// The shm path: the receiver is a second process of this program on this host, the Link runs
// over UCX restricted to shared memory (and the TCP its connection manager needs); the wire
// rate beside it is ucx_perftest's stream bandwidth for the same transports and packet size.
json measure_shared_memory(const std::string& self, const std::vector<std::string>& codecs, int iterations,
                           int warmup, const Setup& setup, const std::string& forwarded, const std::string& svg_dir) {
  const agp::bench::PathSetup loopback("loopback", kTool);
  std::cerr << kTool << ": shm: ucx_perftest stream_bw ...\n";
  const double perftest = agp::bench::ucx_perftest(loopback.path(), 15301 + static_cast<int>(::getpid() % 1000),
                                                   "stream_bw", 655360, 2000, kSharedMemoryTransports, kTool)
                              .bandwidth_gbps;
  FILE* child = ::popen((self + " --role shm-receiver" + forwarded).c_str(), "r");
  if (!child) die("cannot start the receiving process");
  char line[1 << 16];
  int port = 0;
  if (!std::fgets(line, sizeof line, child) || std::sscanf(line, "port %d", &port) != 1) {
    ::pclose(child);
    die("the receiving process did not start listening");
  }
  auto link = agp::transport::Link::connect("127.0.0.1", static_cast<std::uint16_t>(port), link_options(setup));
  if (!link) die("connect: " + link.status().to_string());
  const auto samples = send_all(**link, codecs, iterations, warmup, setup);
  std::string text;
  while (std::fgets(line, sizeof line, child)) text += line;
  if (::pclose(child) != 0) die("the receiving process failed: " + text.substr(0, 300));
  std::map<std::uint64_t, double> decode_us;
  try {
    for (const auto& e : json::parse(text)) decode_us[e[0].get<std::uint64_t>()] = e[1].get<double>();
  } catch (const std::exception&) {
    die("the receiving process gave no decode times: " + text.substr(0, 300));
  }
  json out = {{"path", "shm"},
              {"transports", kSharedMemoryTransports},
              {"processes", 2},
              {"perftest_stream_bw_gbps", perftest},
              {"chunk_vectors", setup.chunk_vectors},
              {"encode_threads", setup.encode_threads},
              {"decode_threads", setup.decode_threads},
              {"busy_poll_us", setup.busy_poll_us},
              {"codecs", summarize("shm", perftest, codecs, samples, decode_us, svg_dir)}};
  std::cerr << kTool << ": " << out.dump() << "\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  std::vector<std::string> paths = {"loopback", "veth-tbf20", "veth-tbf10", "veth-tbf1"};
  if (agp::transport::ucx_available()) paths.push_back("shm");
  std::string role;
  std::string codec_list = "raw,tq4,tq8,ec4,cal4";
  int iterations = 300, warmup = 30;
  Setup setup;
  double iperf_seconds = 2;
  // A 128 KB bucket: iperf3 then reaches about 9.5 of 10 Gbit/s (as the issue measured) while each
  // packet is still paced at the line rate instead of passing whole on saved-up credit.
  std::string burst = "128kb";
  std::string svg_dir;
  CLI::App app{
      "bench_e2e: the seed packet delivered end to end per codec and path (needs root, "
      "iproute2 and iperf3 for the veth paths)"};
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_option("--paths", paths,
                 "loopback, veth-tbf<Gbit/s>, shm (two processes over UCX shared memory; builds with UCX)")
      ->delimiter(',');
  app.add_option("--svg-dir", svg_dir,
                 "write a latency CDF picture per path (e2e-<path>.svg) here");
  app.add_option("--tbf-burst", burst, "token bucket of the veth paths' tbf (tc syntax)");
  app.add_option("--codecs", codec_list, "codecs, interleaved (raw first: ratios are against it)");
  app.add_option("--iterations", iterations, "timed packets per codec and path");
  app.add_option("--warmup", warmup, "untimed packets per codec first");
  app.add_option("--chunk-vectors", setup.chunk_vectors,
                 "chunk size for per-vector codecs (0: whole)");
  app.add_option("--encode-threads", setup.encode_threads,
                 "sender threads encoding a packet's chunks side by side (LinkOptions)")
      ->check(CLI::Range(1, 16));
  app.add_option("--decode-threads", setup.decode_threads,
                 "receiver threads decoding a packet's chunks side by side (LinkOptions)")
      ->check(CLI::Range(1, 16));
  app.add_option("--busy-poll-us", setup.busy_poll_us,
                 "both ends poll without sleeping this long before blocking (LinkOptions)");
  app.add_option("--iperf-seconds", iperf_seconds, "iperf3 run per path (the wire-time estimate)");
  app.add_option("--role", role, "internal: the receiving process of the shm path")
      ->check(CLI::IsMember({"shm-receiver"}))
      ->group("");
  CLI11_PARSE(app, argc, argv);
  auto codecs = agp::tools::split_list(codec_list, "--codecs");
  if (!codecs) die(codecs.status().message());
  for (const auto& c : *codecs) {
    if (c.rfind("cal", 0) != 0) continue;
#if defined(AGP_HAVE_FIDELITY)
    setup.calibration = seed_calibration();
#else
    die("--codecs " + c + ": this build has no fidelity module to calibrate with");
#endif
    break;
  }
  if (!role.empty()) {
    setup.shared_memory = true;
    return shm_receiver(setup);
  }
  // What the receiving process of the shm path must agree on with the sender.
  const std::string forwarded = " --codecs " + codec_list + " --chunk-vectors " +
                                std::to_string(setup.chunk_vectors) + " --busy-poll-us " +
                                std::to_string(setup.busy_poll_us) + " --decode-threads " +
                                std::to_string(setup.decode_threads);

  json results = json::array();
  json goals = json::object();
  for (const auto& name : paths) {
    json r;
    if (name == "shm") {
      if (!agp::transport::ucx_available()) die("--paths shm: this build has no UCX");
      Setup shm = setup;
      shm.shared_memory = true;
      r = measure_shared_memory(std::filesystem::read_symlink("/proc/self/exe").string(), *codecs, iterations, warmup, shm, forwarded,
                                svg_dir);
    } else {
      const agp::bench::PathSetup path(name, kTool, burst);
      r = measure(path.path(), *codecs, iterations, warmup, setup, iperf_seconds, svg_dir);
    }
    for (const auto& c : r["codecs"]) {
      const double ratio = c["ratio_vs_raw_p50"].get<double>();
      if (c["codec"] == "tq4") {
        const double limit = name == "veth-tbf10" ? 0.40 : name == "veth-tbf20" ? 0.60 : 1.0;
        goals[name] = {{"tq4_ratio_vs_raw_p50", ratio}, {"goal", limit}, {"met", ratio <= limit}};
      }
      if (c["codec"] == "cal4") {  // issue 15: <= 0.45x on the 10 Gbit/s path, <= 0.65x on 20
        const double limit = name == "veth-tbf10" ? 0.45 : name == "veth-tbf20" ? 0.65 : 1.0;
        goals[name + "-cal4"] = {{"cal4_ratio_vs_raw_p50", ratio}, {"goal", limit}, {"met", ratio <= limit}};
      }
    }
    results.push_back(r);
  }
  json doc = {
      {"suite", "e2e"},
      {"date", agp::bench::utc_now()},
      {"command", "./dev bench e2e"},
      {"packet", "[1,1280,1,256] fp16, 655,360 bytes, N(0,1); cal4 calibrated on 8 other such packets"},
      {"latency", "send() start to the receiver's acknowledgement, sent after verify and decode"},
      {"wire_rate", "iperf3 on network paths, ucx_perftest stream_bw (655,360-byte messages) on shm"},
      {"paths", results},
      {"goals", goals}};
  agp::bench::emit_results(doc.dump(2), out_path, kTool);
  return 0;
}
