// ptp-faultproxy: a TCP proxy that injects faults between a sender and a receiver, deterministic
// by seed (support/fault_proxy.hpp). Prints "port N" first when --port is 0, runs until SIGINT or
// SIGTERM (or --duration-s), then prints what it injected.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/json_text.hpp"
#include "common/tool_support.hpp"
#include "fault_proxy.hpp"

namespace {

using namespace agp;
using json = nlohmann::json;
constexpr const char* kTool = "ptp-faultproxy";

// Waits for SIGINT/SIGTERM or the duration, whichever comes first.
void wait_for_end(double duration_s) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (duration_s <= 0) {
    int sig = 0;
    sigwait(&set, &sig);
    return;
  }
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(duration_s);
  ts.tv_nsec = static_cast<long>((duration_s - static_cast<double>(ts.tv_sec)) * 1e9);
#ifdef __APPLE__  // no sigtimedwait: poll the pending set
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(duration_s);
  while (std::chrono::steady_clock::now() < until) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
#else
  sigtimedwait(&set, nullptr, &ts);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1", target_host = "127.0.0.1";
  int port = 0, target_port = 0;
  double duration_s = 0;
  bool as_json = false;
  support::FaultPlan plan;
  CLI::App app{
      "ptp-faultproxy: relays TCP connections from --listen:--port to --target-host:--target-port "
      "and injects faults, placed by byte position from --seed so a run can be repeated: latency, "
      "jitter, a rate limit, stalls, resets (RST, often mid-frame), flipped bytes, short writes "
      "and half-open connections. Runs until SIGINT/SIGTERM or --duration-s, then prints what it "
      "injected."};
  app.add_option("--listen", listen, "address to listen on");
  app.add_option("--port", port, "port to listen on (0: pick one and print 'port N' first)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--target-host", target_host, "where to relay connections");
  app.add_option("--target-port", target_port, "port to relay to")
      ->required()
      ->check(CLI::Range(1, 65535));
  app.add_option("--seed", plan.seed, "seed of every fault decision");
  app.add_option("--latency-ms", plan.latency_ms, "added one-way delay")
      ->check(tools::number_in(0, 1e6));
  app.add_option("--jitter-ms", plan.jitter_ms, "plus a uniform [0, jitter) (order is kept)")
      ->check(tools::number_in(0, 1e6));
  app.add_option("--rate-mbit", plan.rate_mbit,
                 "rate limit per direction, 0.001 (1 kbit/s) to 1e7 (0: none)")
      ->check(tools::number_in(0, 1e7))
      ->check([](const std::string& v) {
        // A rate so small that one byte's delay overflows the clock would impose no limit.
        const double r = std::strtod(v.c_str(), nullptr);
        return r == 0 || r >= 1e-3 ? std::string() : std::string("below 0.001 (use 0 for none)");
      });
  app.add_option("--corrupt-per-byte", plan.corrupt_per_byte,
                 "probability a byte is flipped (at most one per connection)")
      ->check(tools::number_in(0, 1));
  app.add_option("--reset-mean-bytes", plan.reset_mean_bytes,
                 "mean client-to-server bytes between resets (0: none)");
  app.add_option("--stall-mean-bytes", plan.stall_mean_bytes,
                 "mean client-to-server bytes between stalls (0: none)");
  app.add_option("--stall-ms", plan.stall_ms, "length of a stall")
      ->check(tools::number_in(0, 1e6));
  app.add_option("--max-write", plan.max_write, "write at most 1..N bytes at a time (0: as read)");
  app.add_option("--half-open-mean-bytes", plan.half_open_mean_bytes,
                 "mean client-to-server bytes before a connection goes silent (0: never)");
  app.add_option("--half-open-hold-ms", plan.half_open_hold_ms,
                 "how long a silent connection's sockets stay open")
      ->check(tools::number_in(0, 1e6));
  app.add_option("--duration-s", duration_s, "stop after this long (0: at SIGINT/SIGTERM)")
      ->check(tools::number_in(0, 1e7));
  app.add_flag("--json", as_json, "print the statistics as JSON");
  if (auto code = tools::parse_command_line(app, argc, argv, kTool)) return *code;

  // Block the signals before any thread starts, so only wait_for_end receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto proxy = support::FaultProxy::start(listen, static_cast<std::uint16_t>(port), target_host,
                                          static_cast<std::uint16_t>(target_port), plan);
  if (!proxy) return tools::fail(kTool, proxy.status().message());
  if (port == 0) std::printf("port %u\n", (*proxy)->port());
  std::fflush(stdout);
  wait_for_end(duration_s);
  const support::FaultStats st = (*proxy)->stats();
  proxy->reset();
  const json doc = {{"tool", kTool},
                    {"seed", plan.seed},
                    {"connections", st.connections},
                    {"bytes_to_server", st.bytes_to_server},
                    {"bytes_to_client", st.bytes_to_client},
                    {"corruptions_injected", st.corruptions_injected},
                    {"corruptions_forwarded", st.corruptions_forwarded},
                    {"resets", st.resets},
                    {"stalls", st.stalls},
                    {"half_opens", st.half_opens},
                    {"short_writes", st.short_writes},
                    {"refused", st.refused}};
  if (as_json) {
    std::printf("%s\n", tools::json_text(doc, 2).c_str());
  } else {
    for (const auto& [k, v] : doc.items()) std::printf("%-22s %s\n", k.c_str(), tools::json_text(v).c_str());
  }
  return 0;
}
