#include "bench_paths.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

namespace agp::bench {

void die(const std::string& tool, const std::string& why) {
  std::cerr << tool << ": error: " << why << "\n";
  std::exit(1);
}

PathSetup::PathSetup(const std::string& name, const std::string& tool, const std::string& burst) {
  path_.name = name;
  if (name == "loopback") {
    path_.server_address = "127.0.0.1";
    return;
  }
  if (name.rfind("veth-tbf", 0) != 0 || std::atof(name.c_str() + 8) <= 0) {
    die(tool, "unknown path '" + name + "' (loopback, veth-tbf<Gbit/s>)");
  }
  path_.rate_gbit = std::atof(name.c_str() + 8);
  if (!support::netns_available()) {
    die(tool, "the " + name + " path needs network namespaces (root and iproute2 'ip netns')");
  }
  path_.burst = burst;
  auto pair =
      support::NetnsPair::create(tool.substr(0, 2) + name.substr(8), path_.rate_gbit, burst);
  if (!pair) die(tool, pair.status().to_string());
  pair_ = std::make_unique<support::NetnsPair>(std::move(pair).value());
  const support::NetnsPair* p = pair_.get();
  path_.server_address = p->address_b();
  path_.enter_server = [p, tool] {
    if (!p->enter_b()) die(tool, "cannot enter " + p->namespace_b());
  };
  path_.enter_client = [p, tool] {
    if (!p->enter_a()) die(tool, "cannot enter " + p->namespace_a());
  };
  path_.server_prefix = "ip netns exec " + p->namespace_b() + " ";
  path_.client_prefix = "ip netns exec " + p->namespace_a() + " ";
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string utc_now() {
  char date[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return date;
}

void emit_results(const std::string& json_text, const std::string& path, const std::string& tool) {
  std::cout << json_text << "\n";
  if (path.empty()) return;
  std::ofstream f(path);
  f << json_text << "\n";
  if (!f) die(tool, "cannot write " + path);
}

std::string command_output(const std::string& command, int* status) {
  std::string out;
  FILE* f = popen(command.c_str(), "r");
  if (!f) {
    if (status) *status = -1;
    return out;
  }
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int s = pclose(f);
  if (status) *status = s;
  return out;
}

double iperf3_gbps(const Path& path, int port, double seconds, const std::string& tool) {
  std::thread server([&] {
    const std::string cmd = path.server_prefix + "iperf3 -s -1 -p " + std::to_string(port) +
                            " -B " + path.server_address + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) std::cerr << tool << ": iperf3 server failed\n";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // iperf3 reads -t as whole seconds (as atoi would), and -t 0 means "forever": at least one.
  const long whole = std::max(1L, static_cast<long>(std::floor(seconds)));
  const std::string cmd = path.client_prefix + "iperf3 -J -c " + path.server_address + " -p " +
                          std::to_string(port) + " -t " + std::to_string(whole);
  const std::string out = command_output(cmd);
  server.join();
  try {
    return nlohmann::json::parse(out)
               .at("end")
               .at("sum_received")
               .at("bits_per_second")
               .get<double>() /
           1e9;
  } catch (const std::exception&) {
    die(tool,
        "iperf3 on " + path.name + " gave no result (is iperf3 installed?): " + out.substr(0, 300));
  }
}

Perftest ucx_perftest(const Path& path, int port, const std::string& test, std::size_t bytes,
                      int iterations, const std::string& tls, const std::string& tool,
                      const std::string& wait_mode) {
  const std::string args = " -t " + test + " -s " + std::to_string(bytes) + " -n " +
                           std::to_string(iterations) + " -p " + std::to_string(port) + " -E " + wait_mode;
  const std::string env = "UCX_TLS=" + tls + " ";
  std::thread server([&] {
    const std::string cmd = path.server_prefix + "env " + env + "ucx_perftest" + args + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) std::cerr << tool << ": ucx_perftest server failed\n";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string cmd = path.client_prefix + "env " + env + "ucx_perftest " + path.server_address + args + " 2>&1";
  const std::string out = command_output(cmd);
  server.join();
  // "Final: iterations p50 average overall bw_average bw_overall rate_average rate_overall";
  // latencies in microseconds, bandwidth in MiB/s.
  const auto at = out.find("Final:");
  double v[8] = {};
  if (at == std::string::npos ||
      std::sscanf(out.c_str() + at + 6, "%lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3],
                  &v[4], &v[5], &v[6], &v[7]) != 8) {
    die(tool, "ucx_perftest " + test + " on " + path.name +
                  " gave no result (is ucx-utils installed?): " + out.substr(0, 300));
  }
  Perftest r;
  r.p50_us = v[1];
  r.bandwidth_gbps = v[5] * 1048576.0 * 8.0 / 1e9;
  return r;
}

long process_status_kb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string key = field + ":";
  for (std::string l; std::getline(in, l);)
    if (l.rfind(key, 0) == 0) return std::stol(l.substr(key.size()));
  return -1;
}

long open_descriptors(int pid) {
  std::error_code ec;
  long n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); ++it)
    ++n;
  return ec ? -1 : n;
}

}  // namespace agp::bench
