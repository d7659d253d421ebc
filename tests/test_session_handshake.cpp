// The handshake's state machines with no socket and no thread: a client and a server machine talk
// through real frames (built, then decoded with the handshake's limits), and each refusal a
// hostile or mismatched peer meets is the typed error the Link reports.
#include <gtest/gtest.h>


#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "client_handshake.hpp"
#include "fake_sessions.hpp"
#include "handshake.hpp"
#include "server_handshake.hpp"

namespace agp::transport::detail {
namespace {

LinkOptions options(std::vector<std::uint8_t> key = {}) {
  LinkOptions o;
  o.fingerprint = ptp::Hash128{0x1111, 0x2222};
  o.model_id = "m";
  o.streams = 4;
  o.key = std::move(key);
  return o;
}

// A header as the peer receives it: framed, then decoded under the handshake's limits.
ptp::MessageHeader over_the_wire(const LinkOptions& o, const ptp::MessageHeader& h) {
  ptp::FrameBuilder builder(o.limits);
  auto built = builder.build(h, {});
  EXPECT_TRUE(built.is_ok());
  const std::vector<std::byte> bytes = built->flatten();
  ptp::FrameDecoder decoder(handshake_decoder(o));
  auto used = decoder.consume(bytes);
  EXPECT_TRUE(used.is_ok()) << used.status().message();
  EXPECT_TRUE(decoder.frame_ready());
  return decoder.take_frame().header();
}

using Sessions = agp::test::FakeSessions;

std::vector<std::uint8_t> nonce(std::uint8_t fill) { return std::vector<std::uint8_t>(32, fill); }

struct Outcome {
  ClientHandshake::Step client;
  ServerHandshake::Step server;
  int messages = 0;
};

// Runs the exchange to its end (at most four messages).
Outcome run(const LinkOptions& co, const LinkOptions& so, ClientHandshake::Start start,
            const SessionDirectory& sessions) {
  ClientHandshake client(co, std::move(start));
  ServerHandshake server(so, nonce(0x5a));
  Outcome out;
  std::optional<ptp::MessageHeader> to_server = client.hello();
  while (to_server && out.messages < 8) {
    ++out.messages;
    out.server = server.on_header(over_the_wire(co, *to_server), sessions);
    to_server.reset();
    if (!out.server.failure || !out.server.send) break;
    ++out.messages;
    out.client = client.on_header(over_the_wire(so, *out.server.send));
    if (!out.client.failure || out.client.done) break;
    to_server = out.client.send;
  }
  return out;
}

TEST(SessionHandshake, WithoutKeyANewSessionTakesTheClientsNumbering) {
  const LinkOptions o = options();
  Sessions sessions;
  const Outcome r = run(o, o, {77, nonce(1), 4, 9, 0}, sessions);
  ASSERT_TRUE(r.server.failure.is_ok()) << r.server.failure.message();
  ASSERT_TRUE(r.client.failure.is_ok()) << r.client.failure.message();
  EXPECT_EQ(r.messages, 2);
  EXPECT_TRUE(r.server.admitted);
  EXPECT_FALSE(r.server.known);
  EXPECT_FALSE(r.server.join);
  EXPECT_EQ(r.server.hello.session_id, 77u);
  EXPECT_EQ(r.server.peer_delivered, 0u);
  EXPECT_EQ(r.server.restart_at, std::optional<std::uint64_t>(8));  // before the client's next
  EXPECT_TRUE(r.client.done);
  EXPECT_EQ(r.client.peer_delivered, 8u);
  EXPECT_EQ(r.client.restart_at, std::optional<std::uint64_t>(0));  // the server's stream is new
}

TEST(SessionHandshake, WithKeyAKnownSessionResumesWhereItWas) {
  const LinkOptions o = options(std::vector<std::uint8_t>(16, 7));
  Sessions sessions;
  sessions.known[77] = {true, 12, 30};
  const Outcome r = run(o, o, {77, nonce(1), 29, 13, 0}, sessions);
  ASSERT_TRUE(r.server.failure.is_ok()) << r.server.failure.message();
  ASSERT_TRUE(r.client.failure.is_ok()) << r.client.failure.message();
  EXPECT_EQ(r.messages, 4);  // hello, reply, proof, ack
  EXPECT_TRUE(r.server.admitted);
  EXPECT_TRUE(r.server.known);
  EXPECT_EQ(r.server.peer_delivered, 29u);
  EXPECT_FALSE(r.server.restart_at);
  EXPECT_TRUE(r.client.done);
  EXPECT_EQ(r.client.peer_delivered, 12u);  // from the ack
  EXPECT_FALSE(r.client.restart_at);
}

TEST(SessionHandshake, JoinsNeedASessionThatIsUpAndAStreamInRange) {
  for (const auto& key : {std::vector<std::uint8_t>{}, std::vector<std::uint8_t>(16, 3)}) {
    const LinkOptions o = options(key);
    Sessions sessions;
    Outcome r = run(o, o, {5, nonce(1), 0, 0, 2}, sessions);
    EXPECT_EQ(r.server.failure.code(), ErrorCode::kBadState);
    sessions.known[5] = {false, 0, 1};  // known, not up
    r = run(o, o, {5, nonce(1), 0, 0, 2}, sessions);
    EXPECT_EQ(r.server.failure.code(), ErrorCode::kBadState);
    sessions.known[5].up = true;
    r = run(o, o, {5, nonce(1), 0, 0, 4}, sessions);  // streams = 4: indices 1..3
    EXPECT_EQ(r.server.failure.code(), ErrorCode::kCapabilityMismatch);
    r = run(o, o, {5, nonce(1), 0, 0, 3}, sessions);
    ASSERT_TRUE(r.server.failure.is_ok()) << r.server.failure.message();
    EXPECT_TRUE(r.server.admitted && r.server.join && r.client.done);
    EXPECT_EQ(r.server.hello.stream_index, 3u);
  }
}

TEST(SessionHandshake, MismatchedKeysAndVersionsAreTypedRefusals) {
  const LinkOptions keyed = options(std::vector<std::uint8_t>(16, 1));
  const LinkOptions other = options(std::vector<std::uint8_t>(16, 2));
  const LinkOptions open = options();
  Sessions sessions;
  // A server with a key refuses a client without one, and the other way round.
  EXPECT_EQ(run(open, keyed, {1, nonce(1), 0, 1, 0}, sessions).server.failure.code(),
            ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(run(keyed, open, {1, nonce(1), 0, 1, 0}, sessions).server.failure.code(),
            ErrorCode::kAuthenticationFailed);
  // Different keys: the client finds the server's proof wrong and never proves its own.
  const Outcome r = run(other, keyed, {1, nonce(1), 0, 1, 0}, sessions);
  EXPECT_EQ(r.client.failure.code(), ErrorCode::kAuthenticationFailed);
  EXPECT_FALSE(r.server.admitted);
  // A client speaking only another protocol version.
  ClientHandshake client(open, {1, nonce(1), 0, 1, 0});
  ptp::MessageHeader h = client.hello();
  h.hello->min_protocol = h.hello->max_protocol = ptp::kProtocolVersion + 1;
  ServerHandshake server(open, nonce(2));
  EXPECT_EQ(server.on_header(h, sessions).failure.code(), ErrorCode::kProtocolVersionMismatch);
}

TEST(SessionHandshake, OutOfPlaceMessagesEndTheHandshake) {
  const LinkOptions keyed = options(std::vector<std::uint8_t>(16, 1));
  Sessions sessions;
  ClientHandshake client(keyed, {9, nonce(1), 0, 1, 0});
  // The server: anything but a hello, a proof first, a forged proof, frames after the end.
  {
    ServerHandshake server(keyed, nonce(2));
    EXPECT_EQ(server.on_header(base_header(keyed, ptp::MessageKind::kHeartbeat), sessions).failure.code(),
              ErrorCode::kHeaderInvalid);
  }
  {
    ServerHandshake server(keyed, nonce(2));
    ptp::MessageHeader proof = client.hello();
    proof.hello->flags |= kFlagProof;
    EXPECT_EQ(server.on_header(proof, sessions).failure.code(), ErrorCode::kHeaderInvalid);
  }
  {
    ServerHandshake server(keyed, nonce(2));
    ASSERT_TRUE(server.on_header(client.hello(), sessions).failure.is_ok());
    ptp::MessageHeader forged = client.hello();
    forged.hello->flags |= kFlagProof;
    forged.hello->auth_tag.assign(32, 0);
    EXPECT_EQ(server.on_header(forged, sessions).failure.code(), ErrorCode::kAuthenticationFailed);
    EXPECT_EQ(server.on_header(client.hello(), sessions).failure.code(), ErrorCode::kBadState);
  }
  // The client: a reply for another session, an ack instead of a reply, the peer's error.
  {
    ServerHandshake server(keyed, nonce(2));
    ServerHandshake::Step s = server.on_header(client.hello(), sessions);
    ASSERT_TRUE(s.send);
    s.send->hello->session_id ^= 1;
    ClientHandshake c(keyed, {9, nonce(1), 0, 1, 0});
    EXPECT_EQ(c.on_header(*s.send).failure.code(), ErrorCode::kHeaderInvalid);
    EXPECT_EQ(c.on_header(*s.send).failure.code(), ErrorCode::kBadState);
  }
  {
    ClientHandshake c(keyed, {9, nonce(1), 0, 1, 0});
    ptp::MessageHeader ack = base_header(keyed, ptp::MessageKind::kAck);
    ack.ack = ptp::AckDesc{5};
    EXPECT_EQ(c.on_header(ack).failure.code(), ErrorCode::kHeaderInvalid);
  }
  {
    ClientHandshake c(keyed, {9, nonce(1), 0, 1, 0});
    ptp::MessageHeader e = base_header(keyed, ptp::MessageKind::kError);
    e.error = ptp::ErrorDesc{static_cast<std::uint32_t>(ErrorCode::kFingerprintMismatch), "no"};
    const ClientHandshake::Step s = c.on_header(e);
    EXPECT_EQ(s.failure.code(), ErrorCode::kFingerprintMismatch);
    EXPECT_TRUE(s.peer_reported);
  }
}

// With a key the reply (and its resume positions) goes out before the proof; a session that
// appears or ends in between makes those positions wrong, and the admission is refused (the
// client retries, bad_state being transient).
TEST(SessionHandshake, ASessionThatChangesDuringTheProofIsRefused) {
  const LinkOptions keyed = options(std::vector<std::uint8_t>(16, 4));
  for (const bool known_at_hello : {false, true}) {
    Sessions sessions;
    if (known_at_hello) sessions.known[3] = {true, 2, 5};
    ClientHandshake client(keyed, {3, nonce(1), 0, 1, 0});
    ServerHandshake server(keyed, nonce(2));
    const ServerHandshake::Step reply = server.on_header(client.hello(), sessions);
    ASSERT_TRUE(reply.failure.is_ok() && reply.send);
    const ClientHandshake::Step proof = client.on_header(*reply.send);
    ASSERT_TRUE(proof.failure.is_ok() && proof.send);
    if (known_at_hello) {
      sessions.known.clear();
    } else {
      sessions.known[3] = {true, 2, 5};
    }
    const ServerHandshake::Step end = server.on_header(*proof.send, sessions);
    EXPECT_EQ(end.failure.code(), ErrorCode::kBadState) << known_at_hello;
    EXPECT_FALSE(end.admitted);
  }
}

TEST(SessionHandshake, NewSessionsWaitInABoundedQueueReturningOnesDoNot) {
  const LinkOptions o = options();
  Sessions sessions;
  sessions.waiting_count = ServerHandshake::kMaxWaitingSessions;
  EXPECT_EQ(run(o, o, {1, nonce(1), 0, 1, 0}, sessions).server.failure.code(), ErrorCode::kBadState);
  sessions.known[1] = {true, 3, 4};
  const Outcome r = run(o, o, {1, nonce(1), 0, 1, 0}, sessions);
  EXPECT_TRUE(r.server.admitted && r.server.known);
  // A recorded position (LinkOptions::known_sessions) is where an unknown session resumes.
  LinkOptions recorded = o;
  recorded.known_sessions.push_back({2, 40});
  Sessions none;
  const Outcome k = run(o, recorded, {2, nonce(1), 0, 1, 0}, none);
  EXPECT_EQ(k.server.restart_at, std::optional<std::uint64_t>(40));
  EXPECT_EQ(k.client.peer_delivered, 40u);
}

}  // namespace
}  // namespace agp::transport::detail
