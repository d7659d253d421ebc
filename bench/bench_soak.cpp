// bench_soak: a sender and a receiver process on loopback at full rate for a long time (10 minutes
// by default), sampling each process's resident memory and open file descriptors. The library must
// not grow: resident memory at the end at most 1% above its level after the warm-up, descriptors
// unchanged. Not a CI test (it takes minutes); `./dev bench soak` writes latest-soak.json.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "agp/transport/link.hpp"
#include "bench_paths.hpp"
#include "common/tool_support.hpp"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr const char* kTool = "bench_soak";

[[noreturn]] void die(const std::string& why) {
  agp::bench::die(kTool, why);
}

agp::transport::LinkOptions options() {
  agp::transport::LinkOptions o;
  o.fingerprint = {0x50a4, 0x50a4};
  o.model_id = "bench-soak";
  o.chunk_vectors = 64;
  return o;
}

// The receiving process: decodes every packet into one buffer until the sender closes.
[[noreturn]] void receive_forever(int port_pipe) {
  auto server = agp::transport::Server::listen("127.0.0.1", 0, options());
  if (!server) die("receiver: " + server.status().to_string());
  const std::uint16_t port = (*server)->port();
  if (::write(port_pipe, &port, sizeof port) != sizeof port) die("receiver: pipe");
  ::close(port_pipe);
  auto link = (*server)->accept(30000ms);
  if (!link) die("receiver: " + link.status().to_string());
  std::vector<std::uint16_t> out(1280 * 256);
  for (;;) {
    auto next = (*link)->next_packet(30000ms);
    if (!next) {
      if (next.status().code() == agp::ErrorCode::kConnectionClosed) std::_Exit(0);
      die("receiver: " + next.status().to_string());
    }
    auto d = (*link)->receive(
        agp::codec::TensorView::contiguous(out.data(), agp::DType::kF16, next->tensor->shape, 1),
        30000ms);
    if (!d) die("receiver: " + d.status().to_string());
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 600, warmup = 60, every = 10;
  std::string out_path, codec_list = "tq4,raw";
  CLI::App app{
      "bench_soak: sender and receiver processes on loopback at full rate, sampling resident "
      "memory and open descriptors of both (goal: at most 1% growth after the warm-up, "
      "descriptors stable)"};
  app.add_option("--seconds", seconds, "length of the run")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "seconds before the reference sample")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--every", every, "seconds between samples")->check(CLI::PositiveNumber);
  app.add_option("--codecs", codec_list, "codecs, alternating packet by packet");
  app.add_option("--out", out_path, "write the JSON results here");
  CLI11_PARSE(app, argc, argv);
  if (warmup >= seconds) die("--warmup must be shorter than --seconds");
  auto names = agp::tools::split_list(codec_list, "--codecs");
  if (!names) die(names.status().message());

  int pipefd[2];
  if (::pipe(pipefd) != 0) die("pipe");
  const pid_t child = ::fork();  // before any thread or socket of ours exists
  if (child < 0) die("fork");
  if (child == 0) {
    ::close(pipefd[0]);
    receive_forever(pipefd[1]);
  }
  ::close(pipefd[1]);
  std::uint16_t port = 0;
  if (::read(pipefd[0], &port, sizeof port) != sizeof port) die("the receiver did not start");
  ::close(pipefd[0]);

  auto link = agp::transport::Link::connect("127.0.0.1", port, options());
  if (!link) die("connect: " + link.status().to_string());
  std::vector<agp::ptp::PacketCodec> codecs;
  for (const auto& n : *names) {
    auto c = agp::tools::parse_codec(n, agp::DType::kF16);
    if (!c) die(c.status().message());
    codecs.push_back(*c);
  }
  const std::vector<std::uint64_t> shape = {1, 1280, 1, 256};
  const agp::tools::Generator gen{"gauss", 3};
  std::vector<std::vector<std::byte>> tensors;
  for (int k = 0; k < 4; ++k) tensors.push_back(gen.make(k, shape, agp::DType::kF16, 1));

  json samples = json::array();
  const pid_t self = ::getpid();
  const auto t0 = Clock::now();
  auto next_sample = t0;
  std::uint64_t packets = 0;
  long ref_rss_send = -1, ref_rss_recv = -1, ref_fd_send = -1, ref_fd_recv = -1;
  for (;;) {
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (Clock::now() >= next_sample) {
      json s = {{"t_s", t},
                {"packets", packets},
                {"sender_rss_kb", agp::bench::process_status_kb(self, "VmRSS")},
                {"receiver_rss_kb", agp::bench::process_status_kb(child, "VmRSS")},
                {"sender_fds", agp::bench::open_descriptors(self)},
                {"receiver_fds", agp::bench::open_descriptors(child)}};
      std::fprintf(stderr,
                   "%s: %5.0f s  %10llu packets  rss send %ld kB recv %ld kB  fds %ld/%ld\n", kTool,
                   t, static_cast<unsigned long long>(packets), s["sender_rss_kb"].get<long>(),
                   s["receiver_rss_kb"].get<long>(), s["sender_fds"].get<long>(),
                   s["receiver_fds"].get<long>());
      if (ref_rss_send < 0 && t >= warmup) {
        ref_rss_send = s["sender_rss_kb"];
        ref_rss_recv = s["receiver_rss_kb"];
        ref_fd_send = s["sender_fds"];
        ref_fd_recv = s["receiver_fds"];
      }
      samples.push_back(std::move(s));
      next_sample +=
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(every));
      if (t >= seconds) break;
    }
    const auto& tensor = tensors[packets % tensors.size()];
    auto r = (*link)->send(
        agp::codec::TensorView::contiguous(tensor.data(), agp::DType::kF16, shape, 1),
        codecs[packets % codecs.size()], {"soak", 0, agp::ptp::Layout::kBC1S}, 30000ms);
    if (!r) die("send: " + r.status().to_string());
    ++packets;
  }
  const json& last = samples.back();
  const double elapsed = last["t_s"].get<double>();
  auto growth = [](long ref, long now) {
    return ref > 0
               ? (static_cast<double>(now) - static_cast<double>(ref)) / static_cast<double>(ref)
               : 0.0;
  };
  const double gs = growth(ref_rss_send, last["sender_rss_kb"]);
  const double gr = growth(ref_rss_recv, last["receiver_rss_kb"]);
  const bool fds_stable = last["sender_fds"] == ref_fd_send && last["receiver_fds"] == ref_fd_recv;
  const auto counters = (*link)->counters();
  (void)(*link)->close(10000ms);
  int status = 0;
  ::waitpid(child, &status, 0);
  const json doc = {
      {"suite", "soak"},
      {"date", agp::bench::utc_now()},
      {"command", "./dev bench soak"},
      {"path", "loopback, sender and receiver in two processes"},
      {"packet", "[1,1280,1,256] f16 (the seed packet), codecs alternating: " + codec_list},
      {"seconds", elapsed},
      {"warmup_seconds", warmup},
      {"packets", packets},
      {"packets_per_second", static_cast<double>(packets) / elapsed},
      {"retransmits", counters.retransmits},
      {"sender",
       {{"rss_kb_after_warmup", ref_rss_send},
        {"rss_kb_end", last["sender_rss_kb"]},
        {"rss_growth", gs},
        {"fds_after_warmup", ref_fd_send},
        {"fds_end", last["sender_fds"]}}},
      {"receiver",
       {{"rss_kb_after_warmup", ref_rss_recv},
        {"rss_kb_end", last["receiver_rss_kb"]},
        {"rss_growth", gr},
        {"fds_after_warmup", ref_fd_recv},
        {"fds_end", last["receiver_fds"]}}},
      {"goal", "rss growth after warm-up <= 1% in both processes; descriptors unchanged"},
      {"met", gs <= 0.01 && gr <= 0.01 && fds_stable},
      {"samples", samples}};
  agp::bench::emit_results(doc.dump(2), out_path, kTool);
  return 0;
}
