// What the network benchmarks share: the paths they measure (loopback, or a veth pair between two
// network namespaces limited by tbf), iperf3 on a path, and percentiles.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "netns_pair.hpp"

namespace agp::bench {

[[noreturn]] void die(const std::string& tool, const std::string& why);

// One measured path: the address the server listens on, how a thread enters each side, and the
// shell prefix that runs a command on each side.
struct Path {
  std::string name;
  std::string server_address;
  std::function<void()> enter_server = [] {};
  std::function<void()> enter_client = [] {};
  std::string server_prefix;
  std::string client_prefix;
  double rate_gbit = 0;  // the tbf limit; 0 for loopback
  std::string burst;     // the tbf bucket
};

// "loopback" or "veth-tbf<N>" (N Gbit/s). Dies with a clear line when namespaces are not allowed.
class PathSetup {
 public:
  PathSetup(const std::string& name, const std::string& tool, const std::string& burst = "4mb");
  const Path& path() const { return path_; }

 private:
  std::unique_ptr<support::NetnsPair> pair_;
  Path path_;
};

double percentile(std::vector<double> v, double p);
// "2026-11-26T10:00:00Z", now.
std::string utc_now();
// Prints `json_text` and writes it to `path` too (when given); dies when the file cannot be
// written.
void emit_results(const std::string& json_text, const std::string& path, const std::string& tool);

// A process's /proc/PID/status field in kB (VmRSS, VmHWM), and its open descriptors; -1 when the
// process is gone (Linux).
long process_status_kb(int pid, const std::string& field);
long open_descriptors(int pid);
// One iperf3 TCP stream across the path for `seconds`; Gbit/s received.
double iperf3_gbps(const Path& path, int port, double seconds, const std::string& tool);

// Runs `command` through the shell and returns its standard output; `status`, if given, gets
// pclose's status (-1 when it could not start).
std::string command_output(const std::string& command, int* status = nullptr);

// UCX's own ucx_perftest on a path (server on the server side, client on the other), restricted
// to the UCX transports `tls`: the "Final:" line's figures. `test` is stream_bw or stream_lat;
// `wait_mode` is ucx_perftest's -E: "poll" (its default: progress in a loop) or "sleep".
struct Perftest {
  double p50_us = 0;          // stream_lat: one-way latency, half the round trip (ucx_perftest's convention)
  double bandwidth_gbps = 0;  // stream_bw: overall bandwidth
};
Perftest ucx_perftest(const Path& path, int port, const std::string& test, std::size_t bytes,
                      int iterations, const std::string& tls, const std::string& tool,
                      const std::string& wait_mode = "poll");

}  // namespace agp::bench
