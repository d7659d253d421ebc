// A link's life as hosts live it: close() that never hides a lost packet, hosts that compute for
// seconds between calls, hosts that fail after connecting, slow log handlers, several threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "agp/transport/link.hpp"
#include "agp/transport/log.hpp"
#include "link_test_helpers.hpp"
#include "log.hpp"

namespace agp::transport {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using Clock = std::chrono::steady_clock;

// A receiving host on its own thread: takes `count` packets (or until the link ends), sleeping
// `think` before each, and records what it saw.
struct ReceivingHost {
  std::thread thread;
  std::atomic<int> delivered{0};
  Status ended;
  Counters counters;
  ReceivingHost(Server& server, int count, Millis think = 0ms, Millis close_after = 5000ms) {
    thread = std::thread([this, &server, count, think, close_after] {
      auto link = server.accept(5000ms);
      ASSERT_TRUE(link) << link.status().to_string();
      for (int i = 0; i < count; ++i) {
        if (think > 0ms) std::this_thread::sleep_for(think);
        auto next = (*link)->next_packet(10000ms);
        if (!next) {
          ended = next.status();
          break;
        }
        std::uint64_t n = 1;
        for (auto d : next->tensor->shape) n *= d;
        std::vector<std::uint16_t> out(n);
        auto d = (*link)->receive(
            codec::TensorView::contiguous(out.data(), DType::kF16, next->tensor->shape,
                                          next->tensor->vector_axis),
            10000ms);
        if (!d) {
          ended = d.status();
          break;
        }
        ++delivered;
      }
      if (ended.is_ok()) {
        auto more = (*link)->next_packet(close_after);
        ended = more.status();
      }
      counters = (*link)->counters();
    });
  }
  ~ReceivingHost() {
    if (thread.joinable()) thread.join();
  }
};

// A close() whose deadline passes with a packet unacknowledged leaves the link open and keeps
// sending it; a host's retry loop (close again until it succeeds) delivers every packet exactly
// once, whatever the packet's size and however short the first deadlines are.
TEST(LinkLifecycle, ACloseThatTimesOutLeavesTheLinkOpenAndLosesNothing) {
  for (std::uint64_t seq : {64ull, 65536ull}) {  // 32 KiB and 32 MiB of f16
    SCOPED_TRACE(seq);
    LinkOptions o = options();
    o.chunk_vectors = 4096;
    auto server = listen(o);
    ASSERT_TRUE(server);
    ReceivingHost host(*server, 1, 0ms, 3000ms);
    auto link = Link::connect("127.0.0.1", server->port(), o);
    ASSERT_TRUE(link) << link.status().to_string();
    Tensor t = make_tensor(7, 256, seq);
    auto posted = (*link)->post(t.view(), tq_codec(4), {}, 5000ms);
    ASSERT_TRUE(posted);
    const Status first = (*link)->close(1ms);
    if (!first) {  // a packet this large is not acknowledged within 1 ms
      EXPECT_EQ(first.code(), ErrorCode::kTimeout) << first.to_string();
      EXPECT_NE(first.message().find("stays open"), std::string::npos) << first.message();
      EXPECT_EQ((*link)->failure().code(), ErrorCode::kOk);
    }
    int closes = 1;
    Status s = first;
    while (!s && closes < 100) {  // the host's retry loop
      s = (*link)->close(100ms);
      ++closes;
    }
    EXPECT_TRUE(s) << s.to_string();
    // The packet's fate is told truthfully after the close: acknowledged, with its receipt.
    auto r = (*link)->wait_acked(*posted, 0ms);
    EXPECT_TRUE(r) << r.status().to_string();
    EXPECT_EQ((*link)->counters().packets_acked, 1u);
    EXPECT_EQ((*link)->counters().packets_sent, 1u);  // never sent twice
    host.thread.join();
    EXPECT_EQ(host.delivered, 1);
    EXPECT_EQ(host.ended.code(), ErrorCode::kConnectionClosed) << host.ended.to_string();
  }
}

// wait_acked that times out is a timeout, the packet still on its way; once the peer has closed
// the link under an unacknowledged packet, every call says so instead of "timeout", so a host that
// retries on timeouts does not send a packet twice and one that waits does not wait for ever.
TEST(LinkLifecycle, PacketsThePeerNeverConfirmedAreReportedAsSuchNotAsTimeouts) {
  ConnectedPair pair = connected_pair(options());
  ASSERT_TRUE(pair.link && pair.peer);
  auto* link = &pair.link;
  auto& peer = pair.peer;
  Tensor t = make_tensor(1);
  auto seq = (*link)->post(t.view(), tq_codec(4), {}, 1000ms);
  ASSERT_TRUE(seq);
  auto early = (*link)->wait_acked(*seq, 50ms);  // nobody receives yet
  EXPECT_EQ(early.status().code(), ErrorCode::kTimeout);
  // The receiving host closes without taking the packet.
  std::thread closer([&] { EXPECT_TRUE(peer->close(2000ms)); });
  auto late = (*link)->wait_acked(*seq, 3000ms);
  closer.join();
  EXPECT_EQ(late.status().code(), ErrorCode::kConnectionClosed) << late.status().to_string();
  EXPECT_NE(late.status().message().find("1 packet"), std::string::npos)
      << late.status().message();
  EXPECT_EQ((*link)->flush(10ms).code(), ErrorCode::kConnectionClosed);
  EXPECT_EQ((*link)->close(10ms).code(), ErrorCode::kConnectionClosed);
  EXPECT_EQ((*link)->counters().packets_acked, 0u);
}

// A host that computes for longer than the dead-peer timeout between calls (a model step) keeps
// its link: no reconnect, no lost packet, on either side.
TEST(LinkLifecycle, HostsComputingLongerThanTheDeadPeerTimeoutKeepTheirLink) {
  LinkOptions o = options();
  o.dead_peer_timeout = 300ms;
  o.heartbeat_interval = 60ms;
  auto server = listen(o);
  ASSERT_TRUE(server);
  constexpr int kPackets = 3;
  ReceivingHost host(*server, kPackets, 700ms);  // the receiver computes too
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link);
  for (int i = 0; i < kPackets; ++i) {
    Tensor t = make_tensor(static_cast<std::uint64_t>(i));
    ASSERT_TRUE((*link)->post(t.view(), tq_codec(4), {}, 5000ms));
    std::this_thread::sleep_for(900ms);  // three dead-peer timeouts without a call
  }
  EXPECT_TRUE((*link)->close(5000ms));
  host.thread.join();
  EXPECT_EQ(host.delivered, kPackets);
  EXPECT_EQ(host.ended.code(), ErrorCode::kConnectionClosed) << host.ended.to_string();
  EXPECT_EQ((*link)->counters().reconnects, 0u);
  EXPECT_EQ(host.counters.reconnects, 0u);
  EXPECT_GT((*link)->counters().heartbeats_sent, 0u);
}

// A sender that fails after connecting tells its peer at once, with its reason: the receiver's
// wait ends within a second instead of at its deadline. Dropping a Link unclosed does the same.
TEST(LinkLifecycle, ASenderThatGivesUpEndsTheReceiversWaitAtOnceWithItsReason) {
  for (bool explicit_abort : {true, false}) {
    SCOPED_TRACE(explicit_abort);
    LinkOptions o = options();
    auto server = listen(o);
    ASSERT_TRUE(server);
    ReceivingHost host(*server, 5);
    auto link = Link::connect("127.0.0.1", server->port(), o);
    ASSERT_TRUE(link);
    Tensor t = make_tensor(1);
    ASSERT_TRUE((*link)->send(t.view(), tq_codec(4), {}, 5000ms));
    std::this_thread::sleep_for(50ms);
    const auto t0 = Clock::now();
    if (explicit_abort) {
      (*link)->abort(make_error(ErrorCode::kAborted, "the shape does not match the calibration"));
      EXPECT_EQ((*link)->post(t.view(), tq_codec(4), {}, 100ms).status().code(),
                ErrorCode::kAborted);
    }
    link->reset();
    host.thread.join();
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(waited, 1.0);
    EXPECT_EQ(host.delivered, 1);
    EXPECT_EQ(host.ended.code(), ErrorCode::kAborted) << host.ended.to_string();
    EXPECT_NE(host.ended.message().find(explicit_abort ? "does not match the calibration"
                                                       : "without closing"),
              std::string::npos)
        << host.ended.message();
  }
}

// A log handler that takes longer per record than the dead-peer timeout delays only its records:
// the link keeps its timing (no reconnect), and records beyond the queue are counted, not kept.
TEST(LinkLifecycle, ASlowLogHandlerNeverDelaysTheLink) {
  std::mutex mu;
  std::vector<std::string> events;
  set_log_handler(
      [&](const LogRecord& r) {
        std::this_thread::sleep_for(400ms);
        std::lock_guard<std::mutex> hold(mu);
        events.emplace_back(r.event);
      },
      LogLevel::kDebug);
  LinkOptions o = options();
  o.dead_peer_timeout = 300ms;
  o.heartbeat_interval = 60ms;
  o.stall_warning = 50ms;  // records while packets wait: the handler is busy throughout
  auto server = listen(o);
  ASSERT_TRUE(server);
  constexpr int kPackets = 5;
  ReceivingHost host(*server, kPackets, 100ms);
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link);
  const auto t0 = Clock::now();
  for (int i = 0; i < kPackets; ++i) {
    Tensor t = make_tensor(static_cast<std::uint64_t>(i));
    ASSERT_TRUE((*link)->send(t.view(), tq_codec(4), {}, 5000ms));
  }
  EXPECT_TRUE((*link)->close(5000ms));
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  host.thread.join();
  EXPECT_EQ(host.delivered, kPackets);
  EXPECT_EQ((*link)->counters().reconnects, 0u);
  EXPECT_EQ(host.counters.reconnects, 0u);
  EXPECT_LT(took, 3.0);  // five packets of a 100 ms host, not five times the handler's 400 ms
  // Far more records than the queue holds: the rest are counted and reported.
  const std::uint64_t dropped_before = log_records_dropped();
  for (int i = 0; i < 3000; ++i) detail::log(LogLevel::kDebug, "test_flood", "record");
  EXPECT_GE(log_records_dropped() - dropped_before, 3000u - 1024u - 1u);
  set_log_handler(nullptr);  // waits for the record being handled; the queue is dropped
  set_log_handler(
      [&](const LogRecord& r) {
        std::lock_guard<std::mutex> hold(mu);
        events.emplace_back(r.event);
      },
      LogLevel::kDebug);
  detail::log(LogLevel::kInfo, "after", "a fast handler gets records again");
  EXPECT_TRUE(flush_log(5000ms));
  set_log_handler(nullptr);
  std::lock_guard<std::mutex> hold(mu);
  EXPECT_EQ(events.back(), "after");
}

// Calls from several threads take turns, and a long wait in one does not hold the others off: a
// metrics reader gets its answer while a receive waits for its deadline.
TEST(LinkLifecycle, ALongWaitDoesNotHoldOtherThreadsOff) {
  ConnectedPair pair = connected_pair(options());
  ASSERT_TRUE(pair.link && pair.peer);
  auto* link = &pair.link;
  auto& peer = pair.peer;
  std::thread waiting([&] {
    auto next = peer->next_packet(3000ms);  // nothing comes: waits its whole deadline
    EXPECT_EQ(next.status().code(), ErrorCode::kTimeout);
  });
  std::this_thread::sleep_for(100ms);
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = Clock::now();
    (void)peer->metrics();
    (void)peer->counters();
    worst = std::max(worst, std::chrono::duration<double>(Clock::now() - t0).count());
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(worst, 0.5);  // not the receive's 3 s
  waiting.join();
  EXPECT_TRUE((*link)->close(2000ms));
}

}  // namespace
}  // namespace agp::transport
