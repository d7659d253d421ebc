// The command-line tools end to end, as a user runs them: ptp-recv and ptp-send over loopback with
// their JSON checked, the saved frames read back by ptp-inspect, and every user error giving one
// line and its exit code.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/npy.hpp"
#include "netns_pair.hpp"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct ToolRun {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

ToolRun run(const std::string& command) {
  const fs::path err =
      fs::temp_directory_path() / ("agp-tools-" + std::to_string(::getpid()) + ".err");
  ToolRun r;
  if (FILE* f = popen((command + " 2>" + err.string()).c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    const int status = pclose(f);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  fs::remove(err);
  return r;
}

// ptp-recv in the background on a free port; its stdout goes to a file whose first line is
// "port N".
struct Receiver {
  fs::path out;
  std::thread waiter;
  int exit_code = -1;
  int port = 0;

  // `prefix` runs it elsewhere (`ip netns exec NS `), listening on `address`.
  explicit Receiver(const std::string& args, const std::string& prefix = "",
                    const std::string& address = "127.0.0.1") {
    out = fs::temp_directory_path() / ("agp-recv-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    const std::string cmd = prefix + AGP_PTP_RECV + " --listen " + address + " --port 0 " + args +
                            " >" + out.string() + " 2>" + out.string() + ".err";
    waiter = std::thread([this, cmd] {
      const int status = std::system(cmd.c_str());
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    });
    for (int i = 0; i < 400 && port == 0; ++i) {
      std::ifstream f(out);
      std::string word;
      if (f >> word && word == "port") f >> port;
      if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Waits for the process; returns its stdout after the "port N" line.
  std::string finish() {
    if (waiter.joinable()) waiter.join();
    std::ifstream f(out);
    std::string all((std::istreambuf_iterator<char>(f)), {});
    fs::remove(out);
    std::ifstream e(out.string() + ".err");
    err.assign(std::istreambuf_iterator<char>(e), {});
    fs::remove(out.string() + ".err");
    const auto nl = all.find('\n');
    return nl == std::string::npos ? "" : all.substr(nl + 1);
  }
  std::string err;
  ~Receiver() {
    if (waiter.joinable()) waiter.join();
  }
};

TEST(Tools, SendAndReceiveOverLoopbackWithSavedFramesAndTensors) {
  const fs::path dir = fs::temp_directory_path() / ("agp-tools-npy-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path frames = dir / "frames.ptp";
  Receiver rx("--check --json --save-npy " + dir.string() + " --save-frames " + frames.string());
  ASSERT_GT(rx.port, 0) << "ptp-recv did not report its port";
  const ToolRun tx =
      run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " + std::to_string(rx.port) +
          " -n 5 --warmup 1 --codecs raw,tq4 --chunk-vectors 64 --generator llm-like "
          "--json --report " +
          (dir / "report.md").string());
  ASSERT_EQ(tx.exit_code, 0) << tx.err;
  const std::string rx_out = rx.finish();
  ASSERT_EQ(rx.exit_code, 0) << rx.err;
  const json s = json::parse(tx.out);
  const json r = json::parse(rx_out);
  ASSERT_EQ(s["codecs"].size(), 2u);
  EXPECT_EQ(r["packets_received"].get<int>(), 12);  // (5 + 1 warm-up) x 2 codecs
  EXPECT_TRUE(r["all_verified"].get<bool>());
  for (const auto& p : r["packets"]) {
    EXPECT_TRUE(p["verified"].get<bool>());
    EXPECT_GT(p["bytes"].get<double>(), 0);
    EXPECT_GE(p["decode_us"].get<double>(), 0);
    EXPECT_TRUE(p.contains("rel_mse"));
  }
  const json& raw = s["codecs"][0];
  const json& tq4 = s["codecs"][1];
  EXPECT_EQ(raw["codec"], "raw");
  EXPECT_EQ(raw["packets"].get<int>(), 5);
  EXPECT_EQ(raw["rel_mse"].get<double>(), 0.0);
  EXPECT_NEAR(raw["ratio_vs_fp16"].get<double>(), 1.0, 0.01);
  EXPECT_EQ(tq4["chunks_per_packet"].get<int>(), 4);
  EXPECT_GT(tq4["ratio_vs_fp16"].get<double>(), 3.5);
  EXPECT_GT(tq4["rel_mse"].get<double>(), 0.001);
  EXPECT_LT(tq4["rel_mse"].get<double>(), 0.03);
  for (const char* k : {"p50", "p95", "p99", "max"}) {
    EXPECT_GT(tq4["latency_us"][k].get<double>(), 0) << k;
  }
  EXPECT_LE(tq4["latency_us"]["p50"].get<double>(), tq4["latency_us"]["max"].get<double>());
  // The receiver's own check of the generated packets agrees with the sender's error.
  const json& rtq4 = r["codecs"][1];
  EXPECT_EQ(rtq4["codec"], "turboquant_mse/4");
  EXPECT_GT(rtq4["rel_mse"].get<double>(), 0.001);
  EXPECT_LT(rtq4["rel_mse"].get<double>(), 0.03);
  EXPECT_EQ(r["codecs"][0]["rel_mse"].get<double>(), 0.0);
  // Saved tensors, report and frames.
  int npy = 0;
  for (const auto& e : fs::directory_iterator(dir)) npy += e.path().extension() == ".npy";
  EXPECT_EQ(npy, 12);
  EXPECT_TRUE(fs::exists(dir / "report.md"));
  EXPECT_TRUE(fs::exists(dir / "report.svg"));
  const ToolRun inspect = run(std::string(AGP_PTP_INSPECT) + " --json " + frames.string());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  const json in = json::parse(inspect.out);
  EXPECT_TRUE(in["valid"].get<bool>());
  EXPECT_EQ(in["frames"].size(), 6u + 6u * 4u);  // raw whole, tq4 in 4 chunks
  // One flipped body byte: ptp-inspect shows the section that no longer matches, and fails.
  {
    std::fstream f(frames, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4000);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 1);
    f.seekp(4000);
    f.write(&c, 1);
  }
  const ToolRun bad = run(std::string(AGP_PTP_INSPECT) + " " + frames.string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("CHECKSUM MISMATCH"), std::string::npos) << bad.out;
  fs::remove_all(dir);
}

// One line on stderr naming the problem, and the exit code.
void expect_one_line_error(const ToolRun& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Tools, UserErrorsGiveOneLineAndAnExitCode) {
  const std::string send = AGP_PTP_SEND;
  expect_one_line_error(run(send + " --codecs tq9"), 2, "unknown codec 'tq9'");
  expect_one_line_error(run(send + " --shape 1,0"), 2, "--shape");
  expect_one_line_error(run(send + " --dtype int7"), 2, "--dtype");
  expect_one_line_error(run(send + " --frobnicate"), 2, "frobnicate");
  expect_one_line_error(run(send + " --input /nonexistent.npy"), 2, "--input");
  // Nobody listens on port 1 of loopback.
  expect_one_line_error(run(send + " --port 1 --connect-timeout-ms 500"), 1, "cannot reach");
  expect_one_line_error(run(std::string(AGP_PTP_INSPECT) + " /nonexistent"), 2, "nonexistent");
  {
    const fs::path junk = fs::temp_directory_path() / ("agp-junk-" + std::to_string(::getpid()));
    std::ofstream(junk) << "this is not a frame, just some text of reasonable length.";
    expect_one_line_error(run(std::string(AGP_PTP_INSPECT) + " " + junk.string()), 1, "bad_magic");
    fs::remove(junk);
  }
  // A sender for another model (different fingerprint) is refused, and says so.
  {
    Receiver rx("--model-id model-a --idle-timeout-ms 3000 --quiet");
    ASSERT_GT(rx.port, 0);
    expect_one_line_error(run(send + " --model-id model-b --port " + std::to_string(rx.port)), 1,
                          "fingerprint_mismatch");
    rx.finish();
    EXPECT_EQ(rx.exit_code, 1);  // it gave up waiting for a matching sender
  }
  // Numbers a user may mistype: NaN, infinity, absurd magnitudes. Refused with the range, in one
  // short line (CLI11's own range checks let NaN through and print 300-digit bounds).
  const std::string proxy = std::string(AGP_PTP_FAULTPROXY) + " --target-port 9";
  expect_one_line_error(run(proxy + " --latency-ms nan"), 2, "--latency-ms");
  expect_one_line_error(run(proxy + " --rate-mbit nan"), 2, "--rate-mbit");
  expect_one_line_error(run(proxy + " --jitter-ms inf"), 2, "--jitter-ms");
  expect_one_line_error(run(proxy + " --duration-s 1e308"), 2, "--duration-s");
  {
    const ToolRun r = run(proxy + " --stall-ms inf");
    expect_one_line_error(r, 2, "--stall-ms");
    EXPECT_LT(r.err.size(), 200u) << r.err;
  }
  expect_one_line_error(run(send + " --rate nan"), 2, "--rate");
  expect_one_line_error(run(send + " --rate 1e-12"), 2, "--rate");
  // More than a receiver takes in one packet, refused before anything is allocated.
  expect_one_line_error(run(send + " --shape 1,1280,1,100000000"), 2, "max_tensor_bytes");
  // A model id the hello cannot carry.
  expect_one_line_error(run(send + " --model-id " + std::string(5000, 'm')), 2, "model_id");
  // The port is taken.
  {
    Receiver first("--idle-timeout-ms 3000 --quiet");
    ASSERT_GT(first.port, 0);
    expect_one_line_error(run(std::string(AGP_PTP_RECV) + " --listen 127.0.0.1 --port " +
                              std::to_string(first.port) + " --idle-timeout-ms 100"),
                          1, "address_in_use");
    first.finish();
  }
}

// Every line of a file that contains `needle`.
std::string lines_with(const fs::path& file, const std::string& needle) {
  std::ifstream in(file);
  std::string found;
  for (std::string l; std::getline(in, l);)
    if (l.find(needle) != std::string::npos) found += l + "\n";
  return found;
}

// --backend ucx through the tools, two processes on one host: over UCX's TCP transport, and over
// shared memory (UCX's own log names the lanes it chose for the stream: tcp/lo, or a shared-memory
// transport on device "memory"). Every packet verified and acknowledged, and both reports name the
// backend. UCX settings without --backend ucx, and UCX in a build without it, are user errors.
TEST(Tools, UcxBackendBetweenTwoProcesses) {
  const std::string send = AGP_PTP_SEND;
  expect_one_line_error(run(send + " --ucx-transports tcp --port 9"), 2, "--backend ucx");
  expect_one_line_error(run(send + " --backend carrier-pigeon"), 2, "--backend");
#ifndef AGP_TEST_HAVE_UCX
  expect_one_line_error(run(send + " --backend ucx --port 9"), 2, "no UCX");
  GTEST_SKIP() << "this build has no UCX backend";
#else
  const fs::path logs = fs::temp_directory_path() / ("agp-ucx-log-" + std::to_string(::getpid()));
  fs::create_directories(logs);
  for (const std::string tls : {"tcp", "sm,tcp"}) {
    SCOPED_TRACE("--ucx-transports " + tls);
    const fs::path rx_log = logs / "rx.log", tx_log = logs / "tx.log";
    ::setenv("UCX_LOG_LEVEL", "info", 1);  // the receiver inherits these
    ::setenv("UCX_LOG_FILE", rx_log.c_str(), 1);
    Receiver rx("--json --quiet --idle-timeout-ms 10000 --backend ucx --ucx-transports " + tls);
    ::unsetenv("UCX_LOG_LEVEL");
    ::unsetenv("UCX_LOG_FILE");
    ASSERT_GT(rx.port, 0);
    const ToolRun tx = run("UCX_LOG_LEVEL=info UCX_LOG_FILE=" + tx_log.string() + " " + send +
                           " --host 127.0.0.1 --port " + std::to_string(rx.port) +
                           " --backend ucx --ucx-transports " + tls +
                           " -n 4 --warmup 1 --codecs raw,tq4 --chunk-vectors 100 --json --quiet");
    ASSERT_EQ(tx.exit_code, 0) << tx.err;
    const std::string out = rx.finish();
    ASSERT_EQ(rx.exit_code, 0) << rx.err;
    const json s = json::parse(tx.out);
    const json r = json::parse(out);
    EXPECT_EQ(s["backend"], "ucx");
    EXPECT_EQ(r["backend"], "ucx");
    EXPECT_EQ(r["packets_received"].get<int>(), 10);
    EXPECT_TRUE(r["all_verified"].get<bool>());
    EXPECT_EQ(s["codecs"][0]["rel_mse"].get<double>(), 0.0);
    const std::string lanes = lines_with(tx_log, "stream(") + lines_with(rx_log, "stream(");
    EXPECT_NE(lanes.find("stream("), std::string::npos) << "UCX logged no stream lanes";
    if (tls == "tcp") {
      EXPECT_EQ(lanes.find("/memory"), std::string::npos) << lanes;
    } else {
      EXPECT_NE(lanes.find("/memory"), std::string::npos) << "no shared-memory lane:\n" << lanes;
    }
    fs::remove(rx_log);
    fs::remove(tx_log);
  }
  fs::remove_all(logs);
  // A TCP sender cannot reach a UCX receiver: it fails, saying so, instead of hanging.
  Receiver ucx_only("--quiet --idle-timeout-ms 3000 --backend ucx");
  ASSERT_GT(ucx_only.port, 0);
  const ToolRun tcp = run(send + " --host 127.0.0.1 --port " + std::to_string(ucx_only.port) +
                          " -n 1 --warmup 0 --quiet --connect-timeout-ms 1000 --give-up-ms 1500");
  EXPECT_EQ(tcp.exit_code, 1) << tcp.err;
  ucx_only.finish();
#endif
}

// UCX over its TCP transport between two network namespaces (a veth pair), each end its own
// process: UCX finds its devices through /sys, which `ip netns exec` remounts for the namespace.
// The cable is pulled mid-run for longer than the dead-peer time: the sender redials, a new UCX
// endpoint is made, and the session resumes with every packet delivered once.
TEST(Tools, UcxBackendBetweenTwoNamespacesResumesAfterTheCableIsPulled) {
#ifndef AGP_TEST_HAVE_UCX
  GTEST_SKIP() << "this build has no UCX backend";
#else
  if (!agp::support::netns_available())
    GTEST_SKIP() << "network namespaces need root and iproute2 (ip netns)";
  auto pair = agp::support::NetnsPair::create("ucx");
  ASSERT_TRUE(pair) << pair.status().to_string();
  // UCX opens its TCP interfaces on the devices that are up when it starts, and refuses
  // connections arriving on any other ("not present during UCP initialization"): wait until the
  // fresh veth pair is operationally up on both sides.
  const std::string is_up = "sh -c 'grep -qx up /sys/class/net/v*/operstate'";
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    up = pair->exec_a(is_up) == 0 && pair->exec_b(is_up) == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(up) << "the veth pair never came up";
  const std::string common = " --backend ucx --ucx-transports tcp --dead-peer-ms 300";
  Receiver rx("--json --quiet --idle-timeout-ms 15000" + common,
              "ip netns exec " + pair->namespace_b() + " ", pair->address_b());
  ASSERT_GT(rx.port, 0) << rx.finish() << rx.err;
  const fs::path acks = fs::temp_directory_path() / ("agp-ucx-acks-" + std::to_string(::getpid()));
  ToolRun tx;
  std::thread sender([&] {
    tx = run("ip netns exec " + pair->namespace_a() + " " + AGP_PTP_SEND + " --host " +
             pair->address_b() + " --port " + std::to_string(rx.port) + common +
             " -n 40 --warmup 0 --codecs tq4 --rate 20 --give-up-ms 10000 --timeout-ms 15000 "
             "--json --quiet"
             " --ack-log " +
             acks.string());
  });
  // The cable is pulled once a few packets are acknowledged (the ack log has their lines).
  auto acked = [&] {
    std::ifstream log(acks);
    return static_cast<int>(std::count(std::istreambuf_iterator<char>(log), {}, '\n'));
  };
  for (int i = 0; i < 1000 && acked() < 8; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(pair->set_link_up(false));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(pair->set_link_up(true));
  sender.join();
  ASSERT_EQ(tx.exit_code, 0) << tx.err;
  const std::string out = rx.finish();
  ASSERT_EQ(rx.exit_code, 0) << rx.err;
  const json s = json::parse(tx.out);
  const json r = json::parse(out);
  EXPECT_EQ(r["backend"], "ucx");
  EXPECT_EQ(r["packets_received"].get<int>(), 40);
  EXPECT_TRUE(r["all_verified"].get<bool>());
  EXPECT_GE(s["counters"]["reconnects"].get<int>(), 1)
      << "the cable pull was not noticed: " << tx.out;
  // Acknowledged once each, in order.
  std::ifstream log(acks);
  std::uint64_t expected = 1, seq = 0;
  std::string name;
  while (log >> seq >> name) EXPECT_EQ(seq, expected++);
  EXPECT_EQ(expected, 41u);
  fs::remove(acks);
#endif
}

// An acknowledgement log that cannot be written is an error, not a silent loss of the record.
TEST(Tools, AckLogThatCannotBeWrittenFailsTheRun) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  Receiver rx("--idle-timeout-ms 3000 --quiet");
  ASSERT_GT(rx.port, 0);
  const ToolRun tx =
      run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " + std::to_string(rx.port) +
          " -n 2 --warmup 0 --codecs tq4 --quiet --ack-log /dev/full");
  expect_one_line_error(tx, 1, "--ack-log");
  rx.finish();
}

// Chunk sizes that do not divide the vector count, through the tools: every packet acknowledged.
TEST(Tools, ChunkSizesThatDoNotDivideTheVectorsAreDelivered) {
  for (const char* chunk : {"100", "3", "255"}) {
    Receiver rx("--json --quiet --idle-timeout-ms 5000");
    ASSERT_GT(rx.port, 0);
    const ToolRun tx =
        run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " + std::to_string(rx.port) +
            " -n 2 --warmup 0 --codecs tq4,int4,prod3 --chunk-vectors " + chunk + " --quiet");
    EXPECT_EQ(tx.exit_code, 0) << "--chunk-vectors " << chunk << ": " << tx.err;
    const std::string out = rx.finish();
    ASSERT_EQ(rx.exit_code, 0) << rx.err;
    EXPECT_EQ(json::parse(out)["packets_received"].get<int>(), 6);
  }
}

// Serving every session (--sessions 0), a peer that says hello and vanishes must not hold the next
// sender off until its session times out (that took 30 s and then ended ptp-recv).
TEST(Tools, AVanishedPeerGivesWayToTheNextSender) {
  Receiver rx("--sessions 0 --count 2 --idle-timeout-ms 40000 --quiet");
  ASSERT_GT(rx.port, 0);
  {  // A hello with the tools' default identity, then gone without a word.
    static constexpr std::string_view kDigest = "synthetic-or-file-states";
    agp::ptp::MessageHeader h;
    h.kind = agp::ptp::MessageKind::kHello;
    h.model_id = "ptp-bench";
    h.split_layer = 2;
    h.fingerprint = agp::ptp::model_fingerprint(
        {"ptp-bench", std::as_bytes(std::span(kDigest.data(), kDigest.size())), 2, 0,
         agp::DType::kF16, 1});
    h.hello = agp::ptp::HelloDesc{};
    h.hello->codecs = {1, 2, 3, 4, 5, 6};
    h.hello->flags = 1;
    h.hello->nonce.assign(16, 3);
    h.hello->session_id = 0xdeadbeef;
    h.hello->next_sequence = 1;
    agp::ptp::FrameBuilder b;
    auto frame = b.build(h, {});
    ASSERT_TRUE(frame) << frame.status().to_string();
    const auto bytes = frame->flatten();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(rx.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // admitted: a session now
    ::close(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ToolRun tx = run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " +
                         std::to_string(rx.port) + " -n 2 --warmup 0 --codecs tq4 --quiet");
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tx.exit_code, 0) << tx.err;
  rx.finish();
  EXPECT_EQ(rx.exit_code, 0) << rx.err;
  // The vanished session ends once its peer is known dead (--dead-peer-ms, 1 s by default) and a
  // sender waits, far below the 30 s it used to take.
  EXPECT_LT(waited, 15.0) << rx.err;
  EXPECT_NE(rx.err.find("session"), std::string::npos) << rx.err;
}

// A frame whose model id is not UTF-8, sealed with a correct header checksum (our builder would
// refuse to write it): the tools report it in text and in JSON instead of aborting.
TEST(Tools, InspectReportsFramesWithBrokenStrings) {
  const fs::path src = fs::path(AGP_GOLDEN_DIR) / "hello.ptp";
  if (!fs::exists(src)) GTEST_SKIP() << "golden frames not found";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = bytes.find("devmodel");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 7] = '\xff';
  std::uint32_t header_length = 0;
  std::memcpy(&header_length, bytes.data() + 8, 4);
  std::string covered = bytes.substr(0, 16) + bytes.substr(24, header_length);
  const std::uint64_t sum =
      agp::ptp::xxh3_64(std::as_bytes(std::span(covered.data(), covered.size())));
  std::memcpy(bytes.data() + 16, &sum, 8);
  const fs::path bad = fs::temp_directory_path() / ("agp-utf8-" + std::to_string(::getpid()));
  std::ofstream(bad, std::ios::binary) << bytes;
  const ToolRun text = run(std::string(AGP_PTP_INSPECT) + " " + bad.string());
  EXPECT_EQ(text.exit_code, 1) << text.err;
  EXPECT_NE((text.out + text.err).find("header_invalid"), std::string::npos)
      << text.out << text.err;
  EXPECT_NE((text.out + text.err).find("UTF-8"), std::string::npos) << text.out << text.err;
  const ToolRun as_json = run(std::string(AGP_PTP_INSPECT) + " --json " + bad.string());
  EXPECT_EQ(as_json.exit_code, 1) << as_json.err;
  json parsed;
  EXPECT_NO_THROW(parsed = json::parse(as_json.out)) << as_json.out;
  fs::remove(bad);
}

}  // namespace

namespace {

#if defined(AGP_PTP_CALIBRATE)
// ptp-calibrate from saved states, then the calibrated codec between ptp-send and ptp-recv holding
// that calibration; a receiver without it turns the sender away (fingerprint); usage errors.
TEST(Tools, CalibrateThenSendTheCalibratedCodec) {
  const std::string cal =
      (fs::temp_directory_path() / ("agp-cal-" + std::to_string(::getpid()) + ".agpcal")).string();
  const std::string calibrate = AGP_PTP_CALIBRATE;
  // rows_f32.npy: 4 states of 384 values.
  const ToolRun made = run(calibrate + " --states " + std::string(AGP_GOLDEN_DIR) +
                           "/codec/rows_f32.npy -o " + cal + " --json");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const json doc = json::parse(made.out);
  EXPECT_EQ(doc["dim"], 384);
  EXPECT_EQ(doc["vectors"], 4);
  EXPECT_EQ(doc["calibration_id"].get<std::string>().size(), 16u);
  {
    Receiver rx("--calibration " + cal + " --json --quiet");
    ASSERT_GT(rx.port, 0);
    const ToolRun tx = run(std::string(AGP_PTP_SEND) + " --port " + std::to_string(rx.port) +
                           " --calibration " + cal + " --codecs cal4 --shape 64,384 -n 3 --json");
    EXPECT_EQ(tx.exit_code, 0) << tx.err;
    const std::string got = rx.finish();
    EXPECT_EQ(rx.exit_code, 0) << rx.err;
    EXPECT_NE(got.find("turboquant_cal"), std::string::npos) << got;
  }
  {
    Receiver rx("--idle-timeout-ms 3000 --quiet");  // holds no calibration
    ASSERT_GT(rx.port, 0);
    expect_one_line_error(run(std::string(AGP_PTP_SEND) + " --port " + std::to_string(rx.port) +
                              " --calibration " + cal + " --codecs cal4 --shape 64,384 -n 1"),
                          1, "fingerprint_mismatch");
    rx.finish();
  }
  expect_one_line_error(run(std::string(AGP_PTP_SEND) + " --codecs cal4"), 2, "--calibration");
  expect_one_line_error(run(calibrate + " -o " + cal), 2, "--states");
  expect_one_line_error(run(calibrate + " --states x.npy --bytes y -o " + cal), 2, "one of");
  {
    std::ofstream(cal, std::ios::app) << "x";  // damaged: one byte too many
    expect_one_line_error(run(std::string(AGP_PTP_SEND) + " --calibration " + cal), 2,
                          "calibration file");
  }
  fs::remove(cal);
}
#endif

// Split-model mode: the sender runs the first half of the devmodel, the receiver continues it from
// each decoded state and reports the continuation's fidelity.
TEST(Tools, SplitModelOverLoopbackReportsContinuationFidelity) {
  const fs::path dir = std::getenv("AGP_DEVMODEL_DIR") ? fs::path(std::getenv("AGP_DEVMODEL_DIR"))
                                                       : fs::path(AGP_DEVMODEL_DEFAULT_DIR);
  if (!fs::exists(dir / "model.safetensors")) {
    GTEST_SKIP() << "devmodel fixture not found at " << dir << " (set AGP_DEVMODEL_DIR)";
  }
  const std::string model = " --model " + dir.string() + " --split 2 --bytes " +
                            (dir / "windows.bin").string() + " --windows 4";
  Receiver rx("--json --quiet" + model);
  ASSERT_GT(rx.port, 0);
  const ToolRun tx =
      run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " + std::to_string(rx.port) +
          model + " -n 4 --warmup 0 --codecs raw,tq4 --json --quiet");
  ASSERT_EQ(tx.exit_code, 0) << tx.err;
  const std::string out = rx.finish();
  ASSERT_EQ(rx.exit_code, 0) << rx.err;
  const json r = json::parse(out);
  ASSERT_EQ(r["codecs"].size(), 2u);
  const json& raw = r["codecs"][0];
  const json& tq4 = r["codecs"][1];
  EXPECT_LT(raw["kl_nats"].get<double>(), 1e-6);
  EXPECT_EQ(raw["top1_agree"].get<double>(), 1.0);
  // Plain TurboQuant 4-bit on these windows: KL about 0.006, top-1 about 0.98.
  EXPECT_GT(tq4["kl_nats"].get<double>(), 0.002);
  EXPECT_LT(tq4["kl_nats"].get<double>(), 0.015);
  EXPECT_GT(tq4["top1_agree"].get<double>(), 0.95);
  EXPECT_LT(tq4["top1_agree"].get<double>(), 1.0);
  {  // Without --json the same figures end the run as a table per codec (the tool's purpose).
    Receiver plain(model);
    ASSERT_GT(plain.port, 0);
    const ToolRun again =
        run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " + std::to_string(plain.port) +
            model + " -n 2 --warmup 0 --codecs raw,tq4 --quiet");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const std::string table = plain.finish();
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    for (const char* column : {"lat p95", "rel MSE", "KL nats", "top-1", "top-5"}) {
      EXPECT_NE(table.find(column), std::string::npos) << column << " missing:\n" << table;
    }
    EXPECT_NE(table.find("\nturboquant_mse"), std::string::npos) << table;
  }
  // A receiver for another split refuses the sender (the fingerprint binds the split layer).
  Receiver other("--quiet --idle-timeout-ms 3000 --model " + dir.string() + " --split 1 --bytes " +
                 (dir / "windows.bin").string());
  ASSERT_GT(other.port, 0);
  const ToolRun refused = run(std::string(AGP_PTP_SEND) + " --host 127.0.0.1 --port " +
                              std::to_string(other.port) + model + " -n 1 --quiet");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("fingerprint_mismatch"), std::string::npos) << refused.err;
  other.finish();
}

// ptp-index as a user runs it: a JSON Lines file of mixed row shapes built into a snapshot,
// inspected, searched (each query finds itself first), exported and read back; a bad row named by
// its line; a damaged snapshot shown as such by inspect and refused by search; the phase-1 bench.
TEST(Tools, IndexBuildInspectSearchExportAndBench) {
  const std::string tool = AGP_PTP_INDEX;
  const fs::path dir = fs::temp_directory_path() / ("agp-index-tool-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string rows = (dir / "rows.jsonl").string(), snap = (dir / "rows.agpidx").string();
  {
    std::ofstream out(rows);
    std::uint64_t state = 7;
    for (int i = 0; i < 300; ++i) {
      std::string v;
      for (int k = 0; k < 64; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if (k) v.push_back(',');
        v.append(std::to_string(static_cast<int>(state >> 40) % 2001 - 1000));
      }
      const char* shapes[] = {"[%s]", "{\"embedding\": [%s], \"id\": 1}", "{\"vector\": [%s]}",
                              "{\"values\": [%s]}", "{\"embedding_vector\": [%s]}"};
      std::string line = shapes[i % 5];
      line.replace(line.find("%s"), 2, v);
      out << line << "\n";
      if (i == 150) out << "\n";  // blank lines are skipped
    }
  }
  ToolRun r = run(tool + " build --input " + rows + " --output " + snap + " --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json built = json::parse(r.out);
  EXPECT_EQ(built["vectors"], 300);
  EXPECT_EQ(built["dim"], 64);
  EXPECT_NEAR(built["code_bits_per_dimension"].get<double>(), 4.5, 1e-9);  // one f32 norm per 64

  r = run(tool + " inspect " + snap + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json info = json::parse(r.out);
  EXPECT_TRUE(info["ok"].get<bool>());
  ASSERT_EQ(info["sections"].size(), 4u);
  for (const auto& s : info["sections"]) EXPECT_TRUE(s["checksum_ok"].get<bool>()) << s;

  // Queries: rows 10 and 200 again (as .npy via export's round trip below is tested separately).
  const std::string queries = (dir / "queries.jsonl").string();
  {
    std::ifstream in(rows);
    std::ofstream out(queries);
    std::string line;
    for (int i = 0; std::getline(in, line); ++i)
      if (i == 10 || i == 201) out << line << "\n";  // line 201 is row 200 (a blank line at 151)
  }
  r = run(tool + " search --index " + snap + " --queries " + queries + " -k 3 --rerank 20 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json hits = json::parse(r.out);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0]["hits"][0]["id"], 10);
  EXPECT_EQ(hits[1]["hits"][0]["id"], 200);
  EXPECT_NEAR(hits[0]["hits"][0]["score"].get<double>(), 1.0, 1e-3);  // itself, exactly

  for (const std::string ext : {".npy", ".jsonl"}) {
    const std::string exported = (dir / ("exported" + ext)).string();
    r = run(tool + " export --index " + snap + " --output " + exported + " --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Built again from the export: the same vectors (fp16 copies, normalized) answer alike.
    const std::string again = (dir / ("again" + ext + ".agpidx")).string();
    r = run(tool + " build --input " + exported + " --output " + again + " --json --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["vectors"], 300);
    r = run(tool + " search --index " + again + " --queries " + queries + " -k 1 --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)[1]["hits"][0]["id"], 200) << ext;
  }

  // A bad row: the file and line, nothing built.
  const std::string bad = (dir / "bad.jsonl").string();
  std::ofstream(bad) << "[1, 2, 3]\n[4, 5, 6]\n{\"embedding\": [1, 2]}\n";
  expect_one_line_error(
      run(tool + " build --input " + bad + " --output " + (dir / "bad.agpidx").string()), 1,
      "bad.jsonl:3: 2 values, earlier rows have 3");
  EXPECT_FALSE(fs::exists(dir / "bad.agpidx"));
  // Queries of another dimension, a width out of range, no subcommand.
  const std::string small = (dir / "small.jsonl").string();
  std::ofstream(small) << "[1, 2, 3]\n";
  expect_one_line_error(run(tool + " search --index " + snap + " --queries " + small), 1,
                        "vectors of 3 values, expected 64");
  expect_one_line_error(run(tool + " build --input " + rows + " --output x --bits 9"), 2, "--bits");
  EXPECT_EQ(run(tool).exit_code, 2);

  // Damage the norms: inspect says which section, search refuses the file.
  const std::uint64_t norms_at = info["sections"][2]["offset"];
  {
    std::fstream f(snap, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(norms_at + 3));
    f.put('\x55');
  }
  r = run(tool + " inspect " + snap);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("section_checksum_mismatch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("norms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BAD"), std::string::npos) << r.out;
  expect_one_line_error(run(tool + " search --index " + snap + " --queries " + queries), 1,
                        "section_checksum_mismatch");

  // The plan's phase-1 harness, small: both tables' fields, and the plan's figures beside.
  r = run(tool + " bench --n-vectors 600 --queries 4 --activation-shape 1,256,1,16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json b = json::parse(r.out);
  ASSERT_EQ(b["embedding"]["rows"].size(), 2u);
  for (const auto& row : b["embedding"]["rows"]) {
    EXPECT_GT(row["recall_at_10"].get<double>(), 0.5) << row;
    EXPECT_GT(row["mean_cosine"].get<double>(), 0.98) << row;
  }
  EXPECT_EQ(b["activation"]["fp16_bytes"], 256 * 16 * 2);
  EXPECT_GT(b["activation"]["ratio_vs_fp16"].get<double>(), 3.5);
  EXPECT_EQ(b["plan"]["embedding"][0]["recall_at_10"], 0.859);
  r = run(tool + " bench --n-vectors 600 --queries 4 --activation-shape 1,256,1,16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| 4 | "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(0.859)"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace

namespace {

// What a careless user tries, and what each tool now does about it: a clear refusal (one line, an
// exit code) where it used to overwrite, abort or accept something that cannot work.
TEST(Tools, CarelessUserTrapsAreRefusedClearly) {
  const fs::path dir = fs::temp_directory_path() / ("agp-traps-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // A rate so small it would impose no limit at all.
  expect_one_line_error(
      run(std::string(AGP_PTP_FAULTPROXY) + " --target-port 9 --rate-mbit 1e-30"), 2,
      "--rate-mbit");
  // A journal that is some other file is never appended to.
  {
    const fs::path other = dir / "tensor.npy";
    std::ofstream(other) << "\x93NUMPY not a journal";
    const ToolRun r = run(std::string(AGP_PTP_RECV) + " --port 0 --journal " + other.string());
    expect_one_line_error(r, 2, "not a ptp-recv journal");
    EXPECT_EQ(fs::file_size(other), 20u);
  }
  // ptp-calibrate: states too wide to calibrate (a 32 GB covariance), and values whose squares
  // overflow the codec's arithmetic: refused, nothing written.
  {
    const std::string out = (dir / "c.agpcal").string();
    std::vector<std::uint16_t> wide(2 * 65536, 0x3c00);
    ASSERT_TRUE(agp::ptp::write_npy((dir / "wide.npy").string(), agp::DType::kF16, {2, 65536},
                                    std::as_bytes(std::span(wide))));
    const ToolRun r = run(std::string(AGP_PTP_CALIBRATE) + " --states " +
                          (dir / "wide.npy").string() + " -o " + out);
    expect_one_line_error(r, 1, "at most 8192");
    std::vector<float> huge(64 * 8);
    for (std::size_t i = 0; i < huge.size(); ++i) huge[i] = (i % 2 ? 3e38f : -3e38f) * static_cast<float>(i % 7) / 7.0f;
    ASSERT_TRUE(agp::ptp::write_npy((dir / "huge.npy").string(), agp::DType::kF32, {64, 8},
                                    std::as_bytes(std::span(huge))));
    expect_one_line_error(run(std::string(AGP_PTP_CALIBRATE) + " --states " +
                              (dir / "huge.npy").string() + " -o " + out),
                          1, "above 1e16");
    EXPECT_FALSE(fs::exists(out));
  }
  // ptp-index build never replaces what is not its own snapshot, nor its input.
  {
    const std::string tool = AGP_PTP_INDEX;
    const fs::path rows = dir / "rows.jsonl";
    {
      std::ofstream f(rows);
      for (int i = 0; i < 50; ++i) f << "[" << i << ", 1, 2, " << (i % 5) << "]\n";
    }
    expect_one_line_error(
        run(tool + " build -i " + rows.string() + " -o " + rows.string() + " --quiet"), 2,
        "is the input file");
    EXPECT_GT(fs::file_size(rows), 0u);
    const ToolRun to_dir = run(tool + " build -i " + rows.string() + " -o " + dir.string() + " --quiet");
    expect_one_line_error(to_dir, 1, "not a regular file");
    EXPECT_EQ(to_dir.err.find("Success"), std::string::npos) << to_dir.err;
    const fs::path notes = dir / "notes.txt";
    std::ofstream(notes) << "somebody's notes";
    expect_one_line_error(
        run(tool + " build -i " + rows.string() + " -o " + notes.string() + " --quiet"), 1,
        "not an index snapshot");
    EXPECT_EQ(fs::file_size(notes), 16u);
  }
  fs::remove_all(dir);
}

// A receiver that fails after accepting (its --save-frames target is full) tells the sender at
// once, with its reason: the sender fails within seconds instead of retrying until its deadline.
TEST(Tools, AReceiverThatFailsTellsTheSenderAtOnce) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  Receiver rx("--save-frames /dev/full --quiet --idle-timeout-ms 20000");
  ASSERT_GT(rx.port, 0);
  const auto t0 = std::chrono::steady_clock::now();
  const ToolRun tx = run(std::string(AGP_PTP_SEND) + " --port " + std::to_string(rx.port) +
                         " -n 20 --warmup 0 --codecs tq4 --quiet --timeout-ms 20000");
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rx.finish();
  EXPECT_EQ(rx.exit_code, 1) << rx.err;
  EXPECT_NE(rx.err.find("--save-frames"), std::string::npos) << rx.err;
  EXPECT_EQ(tx.exit_code, 1) << tx.err;
  EXPECT_NE(tx.err.find("--save-frames"), std::string::npos) << tx.err;  // the receiver's reason
  EXPECT_NE(tx.err.find("aborted"), std::string::npos) << tx.err;
  EXPECT_LT(took, 5.0);
}

}  // namespace
