// The fault proxy (support/fault_proxy) and Links through it: faults are placed by seed, and under
// resets, flipped bytes, short writes and half-open connections every packet arrives once, in
// order, equal to a fault-free decode, while every corrupted frame is refused.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "fault_proxy.hpp"
#include "link_test_helpers.hpp"

namespace agp::transport {
namespace {

using namespace agp::transport::testing;
using support::FaultPlan;
using support::FaultProxy;

// Sends `bytes` through a fresh proxy to a sink and returns what the sink received.
std::string through_proxy(const std::string& bytes, const FaultPlan& plan,
                          support::FaultStats* stats = nullptr) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor sink(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  std::string received;
  std::thread reader([&] {
    asio::ip::tcp::socket s(ctx);
    sink.accept(s);
    asio::error_code ec;
    std::vector<char> buf(65536);
    for (;;) {
      const std::size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      received.append(buf.data(), n);
    }
  });
  {
    auto proxy = FaultProxy::start("127.0.0.1", 0, "127.0.0.1", sink.local_endpoint().port(), plan);
    EXPECT_TRUE(proxy) << proxy.status().to_string();
    if (!proxy) {
      reader.detach();
      return {};
    }
    asio::ip::tcp::socket c(ctx);
    c.connect({asio::ip::make_address("127.0.0.1"), (*proxy)->port()});
    asio::write(c, asio::buffer(bytes));
    c.shutdown(asio::ip::tcp::socket::shutdown_send);
    reader.join();
    if (stats) *stats = (*proxy)->stats();
  }
  return received;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  std::uint64_t x = 7;
  for (auto& ch : s) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ch = static_cast<char>(x >> 56);
  }
  return s;
}

std::vector<std::size_t> differences(const std::string& a, const std::string& b) {
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) at.push_back(i);
  return at;
}

TEST(FaultProxy, PlacesFaultsBySeedWhateverTheSegmentation) {
  const std::string sent = pattern(2 << 20);
  FaultPlan plan;
  plan.seed = 11;
  plan.corrupt_per_byte = 2e-6;  // about 4 expected, one taken per direction and connection
  plan.max_write = 3000;         // short writes
  support::FaultStats stats;
  const std::string a = through_proxy(sent, plan, &stats);
  ASSERT_EQ(a.size(), sent.size());
  const auto flips = differences(sent, a);
  ASSERT_EQ(flips.size(), 1u);
  EXPECT_EQ(stats.corruptions_injected, 1u);
  EXPECT_EQ(stats.corruptions_forwarded, 1u);
  EXPECT_GT(stats.short_writes, 100u);
  plan.max_write = 0;  // other segmentation, same seed: the same byte
  EXPECT_EQ(differences(sent, through_proxy(sent, plan)), flips);
  plan.seed = 12;
  EXPECT_NE(differences(sent, through_proxy(sent, plan)), flips);
}

TEST(FaultProxy, LatencyAndRateLimitSlowTheStreamDown) {
  const std::string sent = pattern(256 << 10);
  FaultPlan plan;
  plan.rate_mbit = 40;  // 256 KiB at 40 Mbit/s: about 52 ms
  plan.latency_ms = 20;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(through_proxy(sent, plan), sent);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);
}

// Packets from a sender to a receiver through `plan`; returns both ends' counters and the proxy's.
struct RunResult {
  Counters sender, receiver;
  support::FaultStats proxy;
  int delivered = 0;
};

RunResult run_through(const FaultPlan& plan, int packets, LinkOptions o) {
  RunResult r;
  auto server = listen(o);
  EXPECT_TRUE(server);
  if (!server) return r;
  auto proxy = FaultProxy::start("127.0.0.1", 0, "127.0.0.1", server->port(), plan);
  EXPECT_TRUE(proxy) << proxy.status().to_string();
  if (!proxy) return r;
  std::thread receiver([&] {
    auto link = server->accept(10000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    for (int i = 0; i < packets; ++i) {
      Tensor t = make_tensor(static_cast<std::uint64_t>(i), 256, 16);
      Delivery d;
      const auto got = receive_one(**link, &d);
      ASSERT_EQ(d.header.sequence, static_cast<std::uint64_t>(i + 1)) << "out of order or lost";
      ASSERT_EQ(got, local_round_trip(t, tq_codec(4))) << "packet " << i << " differs";
      ++r.delivered;
    }
    EXPECT_TRUE((*link)->close(10000ms));
    r.receiver = (*link)->counters();
  });
  auto link = Link::connect("127.0.0.1", (*proxy)->port(), o);
  EXPECT_TRUE(link) << link.status().to_string();
  if (link) {
    for (int i = 0; i < packets; ++i) {
      Tensor t = make_tensor(static_cast<std::uint64_t>(i), 256, 16);
      auto sent = (*link)->send(t.view(), tq_codec(4), {"state", 0, ptp::Layout::kBC1S}, 20000ms);
      if (!sent) {
        ADD_FAILURE() << "packet " << i << ": " << sent.status().to_string();
        break;
      }
    }
    EXPECT_EQ((*link)->next_packet(10000ms).status().code(), ErrorCode::kConnectionClosed);
    r.sender = (*link)->counters();
  }
  receiver.join();
  r.proxy = (*proxy)->stats();
  r.receiver.handshake_rejections += server->counters().handshake_rejections;
  return r;
}

TEST(FaultProxy, ResetsAndFlippedBytesLoseNothingAndDeliverNothingCorrupted) {
  FaultPlan plan;
  plan.seed = 5;
  plan.corrupt_per_byte = 2e-5;
  plan.reset_mean_bytes = 100 * 2500;  // about every 100 packets of ~2.5 KB
  plan.max_write = 1500;
  LinkOptions o = options();
  o.reconnect_initial = Millis(2);
  const RunResult r = run_through(plan, 1500, o);
  EXPECT_EQ(r.delivered, 1500);
  EXPECT_GT(r.proxy.corruptions_forwarded, 5u);
  EXPECT_GT(r.proxy.resets, 3u);
  // Each forwarded flip is one frame refused by whichever end (or handshake) received it.
  const std::uint64_t refused = r.sender.checksum_failures + r.sender.frame_errors +
                                r.receiver.checksum_failures + r.receiver.frame_errors +
                                r.receiver.handshake_rejections;
  EXPECT_EQ(refused, r.proxy.corruptions_forwarded)
      << "sender " << r.sender.checksum_failures << "+" << r.sender.frame_errors << ", receiver "
      << r.receiver.checksum_failures << "+" << r.receiver.frame_errors << ", handshakes "
      << r.receiver.handshake_rejections;
  EXPECT_GE(r.sender.reconnects, r.proxy.resets);
}

TEST(FaultProxy, HalfOpenConnectionsAreNoticedAndReplaced) {
  FaultPlan plan;
  plan.seed = 3;
  plan.half_open_mean_bytes = 120 * 2500;
  plan.half_open_hold_ms = 2000;
  LinkOptions o = options();
  o.heartbeat_interval = Millis(50);
  o.dead_peer_timeout = Millis(300);
  o.reconnect_initial = Millis(5);
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run_through(plan, 600, o);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.delivered, 600);
  EXPECT_GE(r.proxy.half_opens, 2u);
  EXPECT_GE(r.sender.reconnects, r.proxy.half_opens);
  // Each silent connection costs about one dead-peer timeout, not the hold time.
  EXPECT_LT(seconds, 3.0 + 1.0 * static_cast<double>(r.proxy.half_opens)) << seconds << " s";
}

}  // namespace
}  // namespace agp::transport
