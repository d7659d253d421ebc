// Transport benchmark: for each path (loopback, and a veth pair between two network namespaces
// with a 20 Gbit/s tbf limit), the Link's bulk throughput with seed-sized raw packets (655,360
// bytes, verified and delivered into the receiver's buffer) against iperf3 on the same path, and
// the round trip of a 64-byte packet (sent, verified, decoded, acknowledged) against a plain TCP
// ping-pong of 64 bytes; with UCX in the build, the same over the UCX backend (over TCP on each
// path, and over shared memory on this host) against ucx_perftest's stream tests, both ends in
// their own processes. Everything is measured in the same run. Writes
// bench/results/latest-transport.json.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agp/transport/link.hpp"
#include "bench_paths.hpp"

namespace {

using namespace std::chrono_literals;
using agp::transport::Link;
using agp::transport::LinkOptions;
using agp::transport::Server;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr const char* kTool = "bench_transport";
using agp::bench::Path;
using agp::bench::percentile;

[[noreturn]] void die(const std::string& why) {
  agp::bench::die(kTool, why);
}

// CPU seconds the calling thread has used.
double thread_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------- plain TCP ping-pong

std::vector<double> plain_ping_pong(const Path& path, int iterations, int warmup) {
  std::atomic<int> port{0};
  std::thread server([&] {
    path.enter_server();
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, path.server_address.c_str(), &a.sin_addr);
    ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(ls, 1);
    socklen_t len = sizeof a;
    ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    const int s = ::accept(ls, nullptr, nullptr);
    const int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[64];
    for (int i = 0; i < iterations + warmup; ++i) {
      std::size_t got = 0;
      while (got < sizeof buf) {
        const ssize_t n = ::recv(s, buf + got, sizeof buf - got, 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
      }
      if (::send(s, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) break;
    }
    ::close(s);
    ::close(ls);
  });
  std::vector<double> rtts;
  std::thread client([&] {
    path.enter_client();
    while (port == 0) std::this_thread::sleep_for(1ms);
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port.load()));
    ::inet_pton(AF_INET, path.server_address.c_str(), &a.sin_addr);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("ping-pong connect");
    const int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[64] = {};
    for (int i = 0; i < iterations + warmup; ++i) {
      const auto t0 = Clock::now();
      if (::send(s, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) die("ping-pong send");
      std::size_t got = 0;
      while (got < sizeof buf) {
        const ssize_t n = ::recv(s, buf + got, sizeof buf - got, 0);
        if (n <= 0) die("ping-pong recv");
        got += static_cast<std::size_t>(n);
      }
      if (i >= warmup) {
        rtts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
    ::close(s);
  });
  client.join();
  server.join();
  return rtts;
}

// ---------------------------------------------------------------- Link

int g_socket_buffer = -1;   // --socket-buffer; -1 keeps the library default
int g_receive_buffer = -1;  // --receive-buffer; -1 keeps the library default
std::uint32_t g_busy_poll_us = 0;  // --busy-poll-us (the UCX roles)

LinkOptions link_options() {
  LinkOptions o;
  if (g_socket_buffer >= 0) {
    o.socket.send_buffer_bytes = g_socket_buffer;
    o.socket.receive_buffer_bytes = g_socket_buffer;
  }
  if (g_receive_buffer >= 0) o.socket.receive_buffer_bytes = g_receive_buffer;
  o.busy_poll_us = g_busy_poll_us;
  o.fingerprint = {0xbe, 0xef};
  o.model_id = "bench";
  o.window_packets = 32;
  return o;
}

agp::ptp::PacketCodec raw() {
  agp::ptp::PacketCodec c;
  c.config.id = agp::CodecId::kRaw;
  c.config.raw_dtype = agp::DType::kF16;
  return c;
}

// Takes packets into one buffer until a packet named "end"; returns how many (the end included).
std::uint64_t take_until_end(Link& link) {
  std::vector<std::uint16_t> out;
  for (std::uint64_t packets = 1;; ++packets) {
    auto next = link.next_packet(20000ms);
    if (!next) die("receiver: " + next.status().to_string());
    std::uint64_t n = 1;
    for (auto d : next->tensor->shape) n *= d;
    out.resize(n);
    auto d = link.receive(
        agp::codec::TensorView::contiguous(out.data(), agp::DType::kF16, next->tensor->shape, 1), 20000ms);
    if (!d) die("receiver: " + d.status().to_string());
    if (d->header.tensor->name == "end") return packets;
  }
}

// A receiving Link that takes packets into one buffer until a packet named "end".
struct Receiver {
  std::thread thread;
  std::atomic<int> port{0};
  std::atomic<std::uint64_t> packets{0};
  double cpu_seconds = 0;  // of the receiving thread, from accept to the end packet

  // The sending side: enters the client side of `path` and connects once the receiver listens.
  std::unique_ptr<Link> connect(const Path& path) const {
    path.enter_client();
    while (port == 0) std::this_thread::sleep_for(1ms);
    auto link =
        Link::connect(path.server_address, static_cast<std::uint16_t>(port.load()), link_options());
    if (!link) die("connect: " + link.status().to_string());
    return std::move(link).value();
  }
  // Sends the "end" packet that stops the receiver, and closes.
  static void finish(Link& link) {
    std::vector<std::uint16_t> one(1, 0);
    auto end = agp::codec::TensorView::contiguous(one.data(), agp::DType::kF16, {1, 1, 1, 1}, 1);
    if (auto s = link.send(end, raw(), {"end", 0, {}}, 10000ms); !s) die(s.status().to_string());
    (void)link.close(5000ms);
  }

  void start(const Path& path) {
    thread = std::thread([this, &path] {
      path.enter_server();
      auto server = Server::listen(path.server_address, 0, link_options());
      if (!server) die(server.status().to_string());
      port = (*server)->port();
      auto link = (*server)->accept(10000ms);
      if (!link) die("accept: " + link.status().to_string());
      const double cpu0 = thread_cpu_seconds();
      packets = take_until_end(**link);
      cpu_seconds = thread_cpu_seconds() - cpu0;
      (void)(*link)->close(5000ms);
    });
  }
};

struct Bulk {
  double sender_cpu = 0;  // busy fraction of the sending thread during the timed part
  double receiver_cpu = 0;
  double gbps = 0;
  std::uint64_t packets = 0;
  double seconds = 0;
};

Bulk link_bulk(const Path& path, double seconds) {
  Receiver rx;
  rx.start(path);
  Bulk result;
  std::thread client([&] {
    auto link = rx.connect(path);
    // The seed packet: [1, 1280, 1, 256] fp16, 655,360 bytes, owned for as long as it is in flight.
    auto data = std::make_shared<std::vector<std::uint16_t>>(1280 * 256, 0x3c00);
    const auto view =
        agp::codec::TensorView::contiguous(data->data(), agp::DType::kF16, {1, 1280, 1, 256}, 1);
    auto post = [&] {
      auto s = link->post(view, raw(), {"seed", 0, agp::ptp::Layout::kBC1S}, 10000ms, data);
      if (!s) die("post: " + s.status().to_string());
    };
    for (int i = 0; i < 100; ++i) post();  // warm-up
    if (auto s = link->flush(10000ms); !s) die("flush: " + s.to_string());
    const auto t0 = Clock::now();
    const double cpu0 = thread_cpu_seconds();
    const auto until = t0 + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
      post();
      ++result.packets;
    }
    if (auto s = link->flush(10000ms); !s) die("flush: " + s.to_string());
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    result.sender_cpu = (thread_cpu_seconds() - cpu0) / result.seconds;
    result.gbps = static_cast<double>(result.packets) * 655360.0 * 8.0 / result.seconds / 1e9;
    Receiver::finish(*link);
  });
  client.join();
  rx.thread.join();
  result.receiver_cpu = rx.cpu_seconds / result.seconds;  // includes the short warm-up
  return result;
}

std::vector<double> link_small_rtt(const Path& path, int iterations, int warmup) {
  Receiver rx;
  rx.start(path);
  std::vector<double> rtts;
  std::thread client([&] {
    auto link = rx.connect(path);
    std::vector<std::uint16_t> small(32, 0x3c00);  // 64 bytes
    const auto view =
        agp::codec::TensorView::contiguous(small.data(), agp::DType::kF16, {1, 32, 1, 1}, 1);
    for (int i = 0; i < iterations + warmup; ++i) {
      const auto t0 = Clock::now();
      auto r = link->send(view, raw(), {"small", 0, {}}, 10000ms);
      if (!r) die("send: " + r.status().to_string());
      if (i >= warmup) {
        rtts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
    Receiver::finish(*link);
  });
  client.join();
  rx.thread.join();
  return rtts;
}

json measure(const Path& path, double seconds, int iterations) {
  // Throughput: iperf3 and the Link alternate in rounds, and each reports its median round, so a
  // busy moment of this shared machine does not land on one side only.
  constexpr int kBulkRounds = 3;
  std::vector<double> iperf_rounds, link_rounds;
  Bulk bulk;
  for (int r = 0; r < kBulkRounds; ++r) {
    std::cerr << "bench_transport: " << path.name << ": throughput round " << r + 1 << "/"
              << kBulkRounds << " (iperf3, then the link)\n";
    iperf_rounds.push_back(agp::bench::iperf3_gbps(
        path, 5201 + static_cast<int>(::getpid() % 1000) + r, seconds, kTool));
    const Bulk b = link_bulk(path, seconds);
    link_rounds.push_back(b.gbps);
    std::cerr << "bench_transport:   link " << b.gbps << " Gbit/s, sender thread busy "
              << b.sender_cpu << ", receiver thread busy " << b.receiver_cpu << "\n";
    bulk.packets += b.packets;
    bulk.seconds += b.seconds;
  }
  const double iperf = percentile(iperf_rounds, 0.5);
  bulk.gbps = percentile(link_rounds, 0.5);
  std::cerr << "bench_transport: " << path.name << ": round trips ...\n";
  // Interleave the two round-trip measurements in rounds so drifts of a shared machine hit both.
  std::vector<double> ours, plain;
  const int rounds = 4;
  for (int r = 0; r < rounds; ++r) {
    auto a = link_small_rtt(path, iterations / rounds, 200);
    auto b = plain_ping_pong(path, iterations / rounds, 200);
    ours.insert(ours.end(), a.begin(), a.end());
    plain.insert(plain.end(), b.begin(), b.end());
  }
  json j;
  j["path"] = path.name;
  j["bulk_gbps"] = bulk.gbps;
  j["bulk_packets"] = bulk.packets;
  j["bulk_seconds"] = bulk.seconds;
  j["iperf3_gbps"] = iperf;
  j["bulk_gbps_rounds"] = link_rounds;
  j["iperf3_gbps_rounds"] = iperf_rounds;
  j["bulk_ratio_vs_iperf3"] = bulk.gbps / iperf;
  j["small_rtt_p50_us"] = percentile(ours, 0.5);
  j["small_rtt_p99_us"] = percentile(ours, 0.99);
  j["baseline_rtt_p50_us"] = percentile(plain, 0.5);
  j["baseline_rtt_p99_us"] = percentile(plain, 0.99);
  j["rtt_ratio_p50"] = percentile(ours, 0.5) / percentile(plain, 0.5);
  j["round_trips"] = ours.size();
  j["goal_bulk_met"] = bulk.gbps >= 0.9 * iperf;
  j["goal_rtt_met"] = percentile(ours, 0.5) <= 1.15 * percentile(plain, 0.5);
  std::cerr << "bench_transport: " << j.dump() << "\n";
  return j;
}

// ---------------------------------------------------------------- UCX, two processes
//
// The UCX rows run each end as its own process (this program in a --role), started with the
// path's prefix: UCX finds its network devices through /sys, which `ip netns exec` remounts for
// the namespace and a thread's setns does not. The same processes and prefixes run ucx_perftest.

constexpr const char* kUcxReady = "ready";

// --role ucx-receiver: listens on address:port, takes packets until "end", prints nothing else.
int ucx_receiver(const std::string& address, int port, const std::string& tls) {
  LinkOptions o = link_options();
  o.backend = agp::transport::TransportBackend::kUcx;
  o.ucx_transports = tls;
  auto server = Server::listen(address, static_cast<std::uint16_t>(port), o);
  if (!server) die(server.status().to_string());
  std::cout << kUcxReady << std::endl;
  auto link = (*server)->accept(20000ms);
  if (!link) die("accept: " + link.status().to_string());
  (void)take_until_end(**link);
  (void)(*link)->close(5000ms);
  return 0;
}

// --role ucx-bulk / ucx-rtt: the sending side; prints one JSON line.
int ucx_sender(const std::string& role, const std::string& address, int port, const std::string& tls,
               double seconds, int iterations) {
  LinkOptions o = link_options();
  o.backend = agp::transport::TransportBackend::kUcx;
  o.ucx_transports = tls;
  std::unique_ptr<Link> link;
  for (int attempt = 0; attempt < 50 && !link; ++attempt) {  // the receiver may still be starting
    auto l = Link::connect(address, static_cast<std::uint16_t>(port), o);
    if (l) {
      link = std::move(l).value();
    } else if (l.status().code() != agp::ErrorCode::kConnectFailed) {
      die("connect: " + l.status().to_string());
    } else {
      std::this_thread::sleep_for(100ms);
    }
  }
  if (!link) die("connect: nothing listens on " + address + ":" + std::to_string(port));
  json j;
  if (role == "ucx-bulk") {
    auto data = std::make_shared<std::vector<std::uint16_t>>(1280 * 256, 0x3c00);
    const auto view = agp::codec::TensorView::contiguous(data->data(), agp::DType::kF16, {1, 1280, 1, 256}, 1);
    auto post = [&] {
      auto s = link->post(view, raw(), {"seed", 0, agp::ptp::Layout::kBC1S}, 10000ms, data);
      if (!s) die("post: " + s.status().to_string());
    };
    for (int i = 0; i < 100; ++i) post();
    if (auto s = link->flush(10000ms); !s) die("flush: " + s.to_string());
    std::uint64_t packets = 0;
    const auto t0 = Clock::now();
    const auto until = t0 + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
      post();
      ++packets;
    }
    if (auto s = link->flush(10000ms); !s) die("flush: " + s.to_string());
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    j["gbps"] = static_cast<double>(packets) * 655360.0 * 8.0 / secs / 1e9;
  } else {
    std::vector<std::uint16_t> small(32, 0x3c00);
    const auto view = agp::codec::TensorView::contiguous(small.data(), agp::DType::kF16, {1, 32, 1, 1}, 1);
    std::vector<double> rtts;
    for (int i = 0; i < iterations + 200; ++i) {
      const auto t0 = Clock::now();
      auto r = link->send(view, raw(), {"small", 0, {}}, 10000ms);
      if (!r) die("send: " + r.status().to_string());
      if (i >= 200) rtts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    j["rtt_us"] = rtts;
  }
  Receiver::finish(*link);
  std::cout << j.dump() << std::endl;
  return 0;
}

// Runs `command` and returns its standard output; dies when it fails.
std::string output_of(const std::string& command) {
  int status = 0;
  std::string out = agp::bench::command_output(command, &status);
  if (status != 0) die("'" + command + "' failed: " + out.substr(0, 300));
  return out;
}

// One UCX Link run between two processes of this program: the receiver on the server side, the
// sender on the client side, both waiting with `busy_poll_us`. Returns the sender's JSON.
json ucx_link_run(const Path& path, const std::string& self, const std::string& role, int port,
                  const std::string& tls, double seconds, int iterations, std::uint32_t busy_poll_us) {
  const std::string where = " --address " + path.server_address + " --port " + std::to_string(port) +
                            " --transports " + tls + " --busy-poll-us " + std::to_string(busy_poll_us);
  std::thread receiver([&] {
    (void)output_of(path.server_prefix + self + " --role ucx-receiver" + where);
  });
  const std::string out = output_of(path.client_prefix + self + " --role " + role + where + " --seconds " +
                                    std::to_string(seconds) + " --iterations " + std::to_string(iterations));
  receiver.join();
  try {
    return json::parse(out);
  } catch (const std::exception&) {
    die("UCX " + role + " on " + path.name + " gave no result: " + out.substr(0, 300));
  }
}

// ucx_perftest progresses its worker in a loop unless told to sleep (-E sleep), so the Link is
// measured the same two ways: polling without sleeping (LinkOptions::busy_poll_us, both ends)
// against perftest's default, and with the library's default waits against -E sleep.
constexpr std::uint32_t kUcxBusyPollUs = 1000;

// Small round trips, in `rounds` alternating between the Link and ucx_perftest; the p50s.
struct UcxRtt {
  std::vector<double> ours;
  std::vector<double> perftest_rounds;
};
UcxRtt ucx_round_trips(const Path& path, const std::string& self, const std::string& tls, int iterations,
                       std::uint32_t busy_poll_us, const std::string& wait_mode, int& next_port) {
  constexpr int kRounds = 4;
  UcxRtt r;
  for (int round = 0; round < kRounds; ++round) {
    const json a = ucx_link_run(path, self, "ucx-rtt", next_port++, tls, 0, iterations / kRounds, busy_poll_us);
    for (double v : a["rtt_us"]) r.ours.push_back(v);
    r.perftest_rounds.push_back(2.0 * agp::bench::ucx_perftest(path, next_port++, "stream_lat", 64,
                                                                iterations / kRounds, tls, kTool, wait_mode)
                                          .p50_us);
  }
  return r;
}

// The Link over UCX (transports `tls`) against ucx_perftest's stream tests on the same path,
// alternating in rounds as above. ucx_perftest reports one-way latency (half its ping-pong), so
// its round trip is twice that.
json measure_ucx(const Path& path, const std::string& self, const std::string& tls, double seconds,
                 int iterations) {
  const int port = 13000 + static_cast<int>(::getpid() % 500) * 2;
  int next_port = port;
  constexpr int kBulkRounds = 3;
  std::vector<double> perf_rounds, link_rounds;
  for (int r = 0; r < kBulkRounds; ++r) {
    std::cerr << "bench_transport: " << path.name << ": UCX (" << tls << ") throughput round " << r + 1
              << "/" << kBulkRounds << " (ucx_perftest, then the link)\n";
    const int messages = std::max(200, static_cast<int>(seconds * 1500));
    perf_rounds.push_back(
        agp::bench::ucx_perftest(path, next_port++, "stream_bw", 655360, messages, tls, kTool).bandwidth_gbps);
    link_rounds.push_back(
        ucx_link_run(path, self, "ucx-bulk", next_port++, tls, seconds, 0, kUcxBusyPollUs)["gbps"].get<double>());
    std::cerr << "bench_transport:   ucx_perftest " << perf_rounds.back() << " Gbit/s, link "
              << link_rounds.back() << " Gbit/s\n";
  }
  std::cerr << "bench_transport: " << path.name << ": UCX (" << tls << ") round trips, polling ...\n";
  const UcxRtt polling = ucx_round_trips(path, self, tls, iterations, kUcxBusyPollUs, "poll", next_port);
  std::cerr << "bench_transport: " << path.name << ": UCX (" << tls << ") round trips, sleeping ...\n";
  const UcxRtt sleeping = ucx_round_trips(path, self, tls, iterations, 0, "sleep", next_port);
  const double bulk = percentile(link_rounds, 0.5);
  const double perf = percentile(perf_rounds, 0.5);
  const double rtt = percentile(polling.ours, 0.5);
  const double perf_rtt = percentile(polling.perftest_rounds, 0.5);
  const double rtt_sleeping = percentile(sleeping.ours, 0.5);
  const double perf_rtt_sleeping = percentile(sleeping.perftest_rounds, 0.5);
  json j;
  j["transports"] = tls;
  j["processes"] = 2;
  j["link_busy_poll_us"] = kUcxBusyPollUs;
  j["bulk_gbps"] = bulk;
  j["bulk_gbps_rounds"] = link_rounds;
  j["perftest_stream_bw_gbps"] = perf;
  j["perftest_stream_bw_gbps_rounds"] = perf_rounds;
  j["bulk_ratio_vs_perftest"] = bulk / perf;
  j["small_rtt_p50_us"] = rtt;
  j["small_rtt_p99_us"] = percentile(polling.ours, 0.99);
  j["perftest_stream_lat_rtt_p50_us"] = perf_rtt;
  j["perftest_rtt_rounds_us"] = polling.perftest_rounds;
  j["rtt_ratio_p50"] = rtt / perf_rtt;
  j["sleeping"] = {{"small_rtt_p50_us", rtt_sleeping},
                   {"small_rtt_p99_us", percentile(sleeping.ours, 0.99)},
                   {"perftest_sleep_rtt_p50_us", perf_rtt_sleeping},
                   {"perftest_rtt_rounds_us", sleeping.perftest_rounds},
                   {"rtt_ratio_p50", rtt_sleeping / perf_rtt_sleeping}};
  j["goal_bulk_met"] = bulk >= 0.9 * perf;
  j["goal_rtt_met"] = rtt <= 1.3 * perf_rtt;
  std::cerr << "bench_transport: UCX " << j.dump() << "\n";
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  double seconds = 1.5;
  int iterations = 8000;
  std::vector<std::string> paths = {"loopback", "veth-tbf20"};
  CLI::App app{
      "bench_transport: Link throughput against iperf3 and 64-byte round trips against a plain "
      "TCP ping-pong, on loopback and on a veth pair between two network namespaces limited to "
      "20 Gbit/s with tbf (needs root, iproute2 and iperf3)"};
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_option("--seconds", seconds, "duration of each throughput round (3 rounds per method)");
  app.add_option("--iterations", iterations, "timed round trips per method");
  app.add_option("--socket-buffer", g_socket_buffer,
                 "SO_SNDBUF/SO_RCVBUF for the Link (0 = the system's autotuning)");
  app.add_option("--receive-buffer", g_receive_buffer,
                 "SO_RCVBUF alone for the Link (0 = the system's autotuning)");
  app.add_option("--paths", paths, "paths to measure (loopback, veth-tbf20)")->delimiter(',');
  bool with_ucx = agp::transport::ucx_available();
  app.add_flag("--ucx,!--no-ucx", with_ucx,
               "also measure the UCX backend against ucx_perftest (default: when the build has UCX)");
  std::string role, address, transports;
  int port = 0;
  app.add_option("--role", role, "internal: run one end of a UCX measurement")
      ->check(CLI::IsMember({"ucx-receiver", "ucx-bulk", "ucx-rtt"}))
      ->group("");
  app.add_option("--address", address)->group("");
  app.add_option("--busy-poll-us", g_busy_poll_us)->group("");
  app.add_option("--port", port)->group("");
  app.add_option("--transports", transports)->group("");
  CLI11_PARSE(app, argc, argv);
  if (role == "ucx-receiver") return ucx_receiver(address, port, transports);
  if (!role.empty()) return ucx_sender(role, address, port, transports, seconds, iterations);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();

  json rows = json::array();
  for (const auto& name : paths) {
    const agp::bench::PathSetup setup(name, kTool);
    json row = measure(setup.path(), seconds, iterations);
    if (with_ucx) {
      row["ucx"] = measure_ucx(setup.path(), self, "tcp", seconds, iterations);
      // Shared memory between two processes of one host (TCP for UCX's connection manager).
      if (name == "loopback") row["ucx_shm"] = measure_ucx(setup.path(), self, "sm,tcp", seconds, iterations);
    }
    rows.push_back(std::move(row));
  }
  json doc = {{"suite", "transport"},
              {"date", agp::bench::utc_now()},
              {"machine", {{"cores", std::thread::hardware_concurrency()}}},
              {"command", "./dev bench transport"},
              {"paths", rows}};
  agp::bench::emit_results(doc.dump(2), out_path, kTool);
  return 0;
}
