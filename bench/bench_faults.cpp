// bench_faults: the reliability scenarios, with real processes (ptp-send, ptp-recv,
// ptp-faultproxy). Each scenario checks the promise: every packet the sender saw acknowledged is in
// the receiver's journal exactly once, in order within its session, equal to a fault-free decode;
// every corrupted frame is refused. Results per scenario: packets_sent, packets_delivered,
// duplicates, lost, corrupted_delivered, corruptions_injected, corruptions_detected, reconnects.
// Exits 1 when a goal (lost = duplicates = corrupted_delivered = 0, detected = injected) is missed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "bench_paths.hpp"
#include "common/tool_support.hpp"
#include "hostile_clients.hpp"
#include "netns_pair.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr const char* kTool = "bench_faults";

[[noreturn]] void die(const std::string& why) {
  agp::bench::die(kTool, why);
}

struct Tools {
  std::string send = AGP_PTP_SEND, recv = AGP_PTP_RECV, proxy = AGP_PTP_FAULTPROXY;
};

// A child process with stdout and stderr in files.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& out_path) : out_(out_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, (out_path + ".err").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) {
      die("cannot start " + argv[0]);
    }
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string output() const {
    std::ifstream in(out_);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  std::string errors() const {
    std::ifstream in(out_ + ".err");
    return {std::istreambuf_iterator<char>(in), {}};
  }
  // The "port N" line a tool prints first when given port 0.
  int port(std::chrono::milliseconds timeout = 10s) const {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      std::istringstream in(output());
      std::string word;
      int p = 0;
      if (in >> word >> p && word == "port" && p > 0) return p;
      if (!alive()) break;
      std::this_thread::sleep_for(10ms);
    }
    die("no 'port N' line from " + out_ + ": " + errors());
  }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // Waits for the exit; the exit status, or dies after `timeout`.
  int wait(std::chrono::seconds timeout) {
    const auto until = Clock::now() + timeout;
    int status = 0;
    while (Clock::now() < until) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    die(out_ + " did not finish within " + std::to_string(timeout.count()) + " s: " + errors());
  }
  void signal(int sig) const { kill(pid_, sig); }
  void killed() {  // SIGKILL and reap
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
};

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

void wait_for_lines(const std::string& path, std::size_t n, std::chrono::seconds timeout) {
  const auto until = Clock::now() + timeout;
  while (lines_of(path).size() < n) {
    if (Clock::now() > until) die(path + " did not reach " + std::to_string(n) + " lines");
    std::this_thread::sleep_for(5ms);
  }
}

// The decode a fault-free run gives for a generated packet: XXH3-64 of its decoded f16 bytes.
class Expected {
 public:
  Expected(std::vector<std::uint64_t> shape, const std::string& codec)
      : shape_(std::move(shape)),
        codec_(agp::ptp::parse_packet_codec(codec, agp::DType::kF16).value()) {}
  std::uint64_t digest(const std::string& name) {
    if (auto it = cache_.find(name); it != cache_.end()) return it->second;
    auto tag = agp::tools::Generator::from_tag(name);
    if (!tag) die("journal name '" + name + "' is not a generated packet");
    const auto bytes = tag->first.make(tag->second, shape_, agp::DType::kF16, 1);
    const auto view = agp::codec::TensorView::contiguous(bytes.data(), agp::DType::kF16, shape_, 1);
    agp::ptp::TensorPacketWriter w(codec_);
    auto g = w.write(view, {}, agp::ptp::Layout::kBC1S);
    if (!g) die(g.status().to_string());
    const auto flat = g->flatten();
    auto f = agp::ptp::parse_frame(flat);
    if (!f) die(f.status().to_string());
    std::vector<std::byte> out(bytes.size());
    auto ov = agp::codec::TensorView::contiguous(out.data(), agp::DType::kF16, shape_, 1);
    if (auto s = agp::ptp::read_tensor_packet(f->header, f->body, ov); !s) die(s.to_string());
    return cache_[name] = agp::ptp::xxh3_64(out);
  }

 private:
  std::vector<std::uint64_t> shape_;
  agp::ptp::PacketCodec codec_;
  std::map<std::string, std::uint64_t> cache_;
};

// What the journal and the senders' acknowledgement logs say together.
struct Tally {
  std::uint64_t sent = 0, delivered = 0, duplicates = 0, lost = 0, corrupted = 0, out_of_order = 0;
};

Tally tally(const std::string& journal, const std::vector<std::string>& ack_logs,
            Expected& expected) {
  Tally t;
  std::set<std::string> seen;
  std::map<std::string, std::uint64_t> last_seq;  // per session
  for (const auto& line : lines_of(journal)) {
    std::istringstream f(line);
    std::string session, digest, name;
    std::uint64_t seq = 0;
    if (!(f >> session >> seq >> digest >> name)) continue;
    ++t.delivered;
    if (!seen.insert(name).second) ++t.duplicates;
    if (last_seq.count(session) && seq != last_seq[session] + 1) ++t.out_of_order;
    last_seq[session] = seq;
    if (std::stoull(digest, nullptr, 16) != expected.digest(name)) ++t.corrupted;
  }
  for (const auto& log : ack_logs) {
    for (const auto& line : lines_of(log)) {
      std::istringstream f(line);
      std::uint64_t seq = 0;
      std::string name;
      if (!(f >> seq >> name)) continue;
      ++t.sent;
      if (!seen.count(name)) ++t.lost;
    }
  }
  return t;
}

struct Config {
  Tools tools;
  std::string work;
  bool quick = false;
  bool skip_unavailable = false;  // report scenarios this host cannot run as skipped
  std::string shape = "1,256,1,16";
  std::uint64_t packet_bytes = 2688;  // a tq4 frame of that shape
};

std::vector<std::string> sender(const Config& c, int port, int count, int seed,
                                const std::string& ack_log, const std::string& host = "127.0.0.1") {
  return {c.tools.send,
          "--host",
          host,
          "--port",
          std::to_string(port),
          "--codecs",
          "tq4",
          "--count",
          std::to_string(count),
          "--warmup",
          "0",
          "--shape",
          c.shape,
          "--seed",
          std::to_string(seed),
          "--quiet",
          "--json",
          "--ack-log",
          ack_log,
          "--give-up-ms",
          "60000",
          "--timeout-ms",
          "60000"};
}

std::vector<std::string> receiver(const Config& c, int port, const std::string& journal,
                                  const std::string& address = "127.0.0.1",
                                  int give_up_ms = 60000) {
  return {c.tools.recv,
          "--listen",
          address,
          "--port",
          std::to_string(port),
          "--quiet",
          "--json",
          "--journal",
          journal,
          "--idle-timeout-ms",
          "60000",
          "--give-up-ms",
          std::to_string(give_up_ms)};
}

// The counters of a tool's JSON document (after the "port N" line a receiver prints first).
json counters_of(const Process& p) {
  const std::string out = p.output();
  const auto brace = out.find('{');
  if (brace == std::string::npos) die("no JSON from " + p.errors());
  return json::parse(out.substr(brace)).at("counters");
}

std::uint64_t get(const json& j, const char* k) {
  return j.contains(k) ? j[k].get<std::uint64_t>() : 0;
}

json result(const std::string& name, const Tally& t, std::uint64_t injected, std::uint64_t detected,
            std::uint64_t reconnects, double seconds) {
  json r = {{"scenario", name},
            {"packets_sent", t.sent},
            {"packets_delivered", t.delivered},
            {"duplicates", t.duplicates},
            {"lost", t.lost},
            {"out_of_order", t.out_of_order},
            {"corrupted_delivered", t.corrupted},
            {"corruptions_injected", injected},
            {"corruptions_detected", detected},
            {"reconnects", reconnects},
            {"seconds", seconds}};
  r["met"] = t.lost == 0 && t.duplicates == 0 && t.corrupted == 0 && t.out_of_order == 0 &&
             detected == injected && t.sent > 0;
  std::fprintf(
      stderr,
      "%s: %-22s sent %llu delivered %llu lost %llu dup %llu corrupted %llu "
      "injected %llu detected %llu reconnects %llu  %.1f s  %s\n",
      kTool, name.c_str(), static_cast<unsigned long long>(t.sent),
      static_cast<unsigned long long>(t.delivered), static_cast<unsigned long long>(t.lost),
      static_cast<unsigned long long>(t.duplicates), static_cast<unsigned long long>(t.corrupted),
      static_cast<unsigned long long>(injected), static_cast<unsigned long long>(detected),
      static_cast<unsigned long long>(reconnects), seconds, r["met"].get<bool>() ? "ok" : "MISSED");
  return r;
}

// Waits for the sender to finish its packets and the receiver to end after it; dies naming the
// scenario and the tool otherwise.
void finish(const std::string& scenario, Process& sender, Process& receiver) {
  if (sender.wait(600s) != 0) die(scenario + ": ptp-send failed: " + sender.errors());
  if (receiver.wait(60s) != 0) die(scenario + ": ptp-recv failed: " + receiver.errors());
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

json proxy_stats(Process& proxy) {
  proxy.signal(SIGTERM);
  if (proxy.wait(30s) != 0) die("ptp-faultproxy failed: " + proxy.errors());
  const std::string out = proxy.output();
  if (out.find('{') == std::string::npos) die("no JSON from ptp-faultproxy: " + proxy.errors());
  return json::parse(out.substr(out.find('{')));
}

// Resets about every 200 packets and one flipped byte in 100,000, both ways.
json resets_and_corruption(const Config& c, Expected& expected) {
  const int n = c.quick ? 2000 : 10000;
  const std::string dir = c.work + "/resets";
  std::filesystem::create_directories(dir);
  const auto t0 = Clock::now();
  Process recv(receiver(c, 0, dir + "/journal"), dir + "/recv.out");
  Process proxy({c.tools.proxy, "--target-port", std::to_string(recv.port()), "--seed", "1",
                 "--corrupt-per-byte", "1e-5", "--reset-mean-bytes",
                 std::to_string(200 * c.packet_bytes), "--max-write", "1400", "--json"},
                dir + "/proxy.out");
  Process send(sender(c, proxy.port(), n, 1, dir + "/acks"), dir + "/send.out");
  finish("resets_and_corruption", send, recv);
  const json ps = proxy_stats(proxy);
  const json sc = counters_of(send), rc = counters_of(recv);
  const std::uint64_t detected = get(sc, "checksum_failures") + get(sc, "frame_errors") +
                                 get(rc, "checksum_failures") + get(rc, "frame_errors") +
                                 get(rc, "handshake_rejections");
  json r = result("resets_and_corruption", tally(dir + "/journal", {dir + "/acks"}, expected),
                  ps["corruptions_forwarded"], detected, get(sc, "reconnects"), since(t0));
  r["resets_injected"] = ps["resets"];
  r["corruptions_flipped"] = ps["corruptions_injected"];
  return r;
}

// The receiver SIGKILLed a third of the way and started again on its journal.
json receiver_killed(const Config& c, Expected& expected) {
  const int n = c.quick ? 1500 : 3000;
  const std::string dir = c.work + "/recv-kill";
  std::filesystem::create_directories(dir);
  const auto t0 = Clock::now();
  auto first = std::make_unique<Process>(receiver(c, 0, dir + "/journal"), dir + "/recv1.out");
  const int port = first->port();
  Process send(sender(c, port, n, 1, dir + "/acks"), dir + "/send.out");
  wait_for_lines(dir + "/journal", static_cast<std::size_t>(n / 3), 120s);
  first->killed();
  Process second(receiver(c, port, dir + "/journal"), dir + "/recv2.out");
  finish("receiver_killed", send, second);
  return result("receiver_killed", tally(dir + "/journal", {dir + "/acks"}, expected), 0, 0,
                get(counters_of(send), "reconnects"), since(t0));
}

// The sender SIGKILLed a third of the way; a new sender (a new session) is served by the same
// receiver once the first has been given up.
json sender_killed(const Config& c, Expected& expected) {
  const int n = c.quick ? 1500 : 3000;
  const std::string dir = c.work + "/send-kill";
  std::filesystem::create_directories(dir);
  const auto t0 = Clock::now();
  // The killed sender's session ends after 1 s without it.
  auto args = receiver(c, 0, dir + "/journal", "127.0.0.1", 1000);
  args.insert(args.end(), {"--sessions", "2"});
  Process recv(args, dir + "/recv.out");
  const int port = recv.port();
  {
    Process first(sender(c, port, n, 1, dir + "/acks1"), dir + "/send1.out");
    wait_for_lines(dir + "/acks1", static_cast<std::size_t>(n / 3), 120s);
    first.killed();
  }
  Process second(sender(c, port, n / 3, 2, dir + "/acks2"), dir + "/send2.out");
  finish("sender_killed", second, recv);
  return result("sender_killed",
                tally(dir + "/journal", {dir + "/acks1", dir + "/acks2"}, expected), 0, 0,
                get(counters_of(second), "reconnects"), since(t0));
}

// Connections going silent both ways (sockets kept open): noticed by the dead-peer timeout.
json half_open(const Config& c, Expected& expected) {
  const int n = c.quick ? 1500 : 3000;
  const std::string dir = c.work + "/half-open";
  std::filesystem::create_directories(dir);
  const auto t0 = Clock::now();
  auto rargs = receiver(c, 0, dir + "/journal");
  rargs.insert(rargs.end(), {"--dead-peer-ms", "300"});
  Process recv(rargs, dir + "/recv.out");
  Process proxy({c.tools.proxy, "--target-port", std::to_string(recv.port()), "--seed", "3",
                 "--half-open-mean-bytes", std::to_string(400 * c.packet_bytes),
                 "--half-open-hold-ms", "5000", "--json"},
                dir + "/proxy.out");
  auto sargs = sender(c, proxy.port(), n, 1, dir + "/acks");
  sargs.insert(sargs.end(), {"--dead-peer-ms", "300"});
  Process send(sargs, dir + "/send.out");
  finish("half_open", send, recv);
  const json ps = proxy_stats(proxy);
  const double seconds = since(t0);
  json r = result("half_open", tally(dir + "/journal", {dir + "/acks"}, expected), 0, 0,
                  get(counters_of(send), "reconnects"), seconds);
  r["half_opens"] = ps["half_opens"];
  r["dead_peer_timeout_ms"] = 300;
  // Noticed within the timeout: each silent connection may cost about one timeout plus a redial.
  const bool bounded = seconds < 5.0 + 0.6 * ps["half_opens"].get<double>();
  r["recovered_within_timeout"] = bounded;
  if (!bounded || ps["half_opens"].get<std::uint64_t>() == 0) r["met"] = false;
  return r;
}

// The cable pulled for 1.5 s and plugged back, between two network namespaces.
json link_down_up(const Config& c, Expected& expected) {
  const int n = c.quick ? 1500 : 3000;
  const std::string dir = c.work + "/link-down";
  std::filesystem::create_directories(dir);
  if (!agp::support::netns_available()) {
    const std::string why = "needs network namespaces (root and iproute2 'ip netns')";
    if (!c.skip_unavailable) die("link_down_up " + why);
    std::fprintf(stderr, "%s: link_down_up skipped: %s\n", kTool, why.c_str());
    return {{"scenario", "link_down_up"}, {"skipped", why}, {"met", true}};
  }
  auto pair = agp::support::NetnsPair::create("flt");
  if (!pair) die("link_down_up: " + pair.status().to_string());
  const auto t0 = Clock::now();
  auto rargs = receiver(c, 0, dir + "/journal", pair->address_b());
  rargs.insert(rargs.end(), {"--dead-peer-ms", "300"});
  rargs.insert(rargs.begin(), {"ip", "netns", "exec", pair->namespace_b()});
  Process recv(rargs, dir + "/recv.out");
  auto sargs = sender(c, recv.port(), n, 1, dir + "/acks", pair->address_b());
  sargs.insert(sargs.end(), {"--dead-peer-ms", "300", "--rate", "1000"});
  sargs.insert(sargs.begin(), {"ip", "netns", "exec", pair->namespace_a()});
  Process send(sargs, dir + "/send.out");
  wait_for_lines(dir + "/acks", static_cast<std::size_t>(n / 3), 120s);
  if (auto s = pair->set_link_up(false); !s) die("link_down_up: " + s.to_string());
  std::this_thread::sleep_for(1500ms);
  if (auto s = pair->set_link_up(true); !s) die("link_down_up: " + s.to_string());
  finish("link_down_up", send, recv);
  return result("link_down_up", tally(dir + "/journal", {dir + "/acks"}, expected), 0, 0,
                get(counters_of(send), "reconnects"), since(t0));
}

// Garbage, oversize lengths, slow-loris headers, a flood of connections and wrong keys, while a
// legitimate sender runs: the receiver stays up, bounded, and serves it.
json hostile_clients(const Config& c, Expected& expected) {
  const int n = c.quick ? 3000 : 5000;  // paced at 300/s: it outlasts the attack (about 6 s)
  const std::string dir = c.work + "/hostile";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir + "/key") << "0123456789abcdef0123456789abcdef";
    std::ofstream(dir + "/wrong-key") << "fedcba9876543210fedcba9876543210";
  }
  const auto t0 = Clock::now();
  auto rargs = receiver(c, 0, dir + "/journal");
  rargs.insert(rargs.end(), {"--key-file", dir + "/key"});
  Process recv(rargs, dir + "/recv.out");
  const int port = recv.port();
  std::this_thread::sleep_for(200ms);
  const long rss_before = agp::bench::process_status_kb(recv.pid(), "VmRSS");
  const long fds_before = agp::bench::open_descriptors(recv.pid());
  auto sargs = sender(c, port, n, 1, dir + "/acks");
  sargs.insert(sargs.end(), {"--key-file", dir + "/key", "--rate", "300"});
  Process send(sargs, dir + "/send.out");
  agp::bench::HostileReport attack =
      agp::bench::attack("127.0.0.1", static_cast<std::uint16_t>(port), c.quick ? 1000 : 3000);
  for (int i = 0; i < 3; ++i) {  // wrong keys, each refused
    auto wargs = sender(c, port, 1, 9, dir + "/wrong-acks");
    wargs.insert(wargs.end(), {"--key-file", dir + "/wrong-key", "--connect-timeout-ms", "3000",
                               "--give-up-ms", "1000"});
    Process wrong(wargs, dir + "/wrong.out");
    if (wrong.wait(60s) == 0) die("hostile_clients: a sender with a wrong key was admitted");
    ++attack.wrong_keys;
  }
  std::this_thread::sleep_for(2500ms);  // past the handshake timeout: refused peers are gone
  if (!send.alive()) die("hostile_clients: the legitimate sender ended before the attack did");
  const long rss_peak = agp::bench::process_status_kb(recv.pid(), "VmHWM");
  const long rss_after = agp::bench::process_status_kb(recv.pid(), "VmRSS");
  const long fds_after = agp::bench::open_descriptors(recv.pid());
  finish("hostile_clients", send, recv);
  const json rc = counters_of(recv);
  json r = result("hostile_clients", tally(dir + "/journal", {dir + "/acks"}, expected), 0, 0,
                  get(counters_of(send), "reconnects"), since(t0));
  r["attacks"] = {{"garbage_connections", attack.garbage},
                  {"oversize_headers", attack.oversize},
                  {"slow_loris", attack.slow_loris},
                  {"connection_flood", attack.flood},
                  {"wrong_keys", attack.wrong_keys}};
  r["handshake_rejections"] = get(rc, "handshake_rejections");
  r["receiver_rss_kb"] = {{"before", rss_before}, {"after", rss_after}, {"peak", rss_peak}};
  r["receiver_fds"] = {{"before", fds_before}, {"after", fds_after}};
  // Bounded: the attack may not grow the receiver by more than 64 MB, nor leave sockets behind.
  const bool bounded = rss_peak - rss_before < 64 * 1024 && fds_after <= fds_before + 4;
  r["bounded"] = bounded;
  if (!bounded) r["met"] = false;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  std::string out_path;
  std::vector<std::string> only;
  CLI::App app{
      "bench_faults: reliability scenarios with real processes (ptp-send, ptp-recv, "
      "ptp-faultproxy): resets and corruption, receiver and sender killed, half-open "
      "connections, a link down and up (needs root for network namespaces), hostile clients"};
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_flag("--quick", c.quick, "fewer packets per scenario (the CI test)");
  app.add_flag("--skip-unavailable", c.skip_unavailable,
               "report scenarios this host cannot run (no network namespaces) as skipped instead "
               "of failing");
  app.add_option("--scenarios", only,
                 "resets_and_corruption, receiver_killed, sender_killed, half_open, "
                 "link_down_up, hostile_clients (default: all)")
      ->delimiter(',');
  app.add_option("--work-dir", c.work, "where journals and logs go (default: a fresh temp dir)");
  CLI11_PARSE(app, argc, argv);
  if (c.work.empty()) {
    c.work = (std::filesystem::temp_directory_path() / ("agp-faults-" + std::to_string(::getpid())))
                 .string();
  }
  std::filesystem::create_directories(c.work);
  Expected expected({1, 256, 1, 16}, "tq4");
  const std::vector<std::pair<std::string, json (*)(const Config&, Expected&)>> all = {
      {"resets_and_corruption", resets_and_corruption},
      {"receiver_killed", receiver_killed},
      {"sender_killed", sender_killed},
      {"half_open", half_open},
      {"link_down_up", link_down_up},
      {"hostile_clients", hostile_clients}};
  json results = json::array();
  bool met = true;
  for (const auto& [name, run] : all) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    std::fprintf(stderr, "%s: %s ...\n", kTool, name.c_str());
    json r = run(c, expected);
    met = met && r["met"].get<bool>();
    results.push_back(std::move(r));
  }
  if (results.empty()) die("no scenario selected");
  const json doc = {{"suite", "faults"},
                    {"date", agp::bench::utc_now()},
                    {"command", "./dev bench faults"},
                    {"packet", "[1,256,1,16] f16 tq4, generated (gauss), about 2.7 KB a frame"},
                    {"goal",
                     "lost = duplicates = corrupted_delivered = 0 and detected = injected "
                     "in every scenario"},
                    {"all_met", met},
                    {"scenarios", results}};
  agp::bench::emit_results(doc.dump(2), out_path, kTool);
  std::error_code ec;
  std::filesystem::remove_all(c.work, ec);
  return met ? 0 : 1;
}
