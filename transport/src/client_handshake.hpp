// The client's side of one handshake, as a state machine fed with the headers of the frames that
// arrive: no socket, no clock, no session state (internal). The same machine opens a session's
// first connection and each extra stream (a join). docs/transport.md describes the exchange.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "agp/ptp/message.hpp"
#include "agp/transport/link.hpp"

namespace agp::transport::detail {

class ClientHandshake {
 public:
  struct Start {
    std::uint64_t session_id = 0;
    std::vector<std::uint8_t> nonce;     // fresh for every attempt (detail::fresh_nonce)
    std::uint64_t delivered = 0;         // highest peer sequence delivered here
    std::uint64_t next_sequence = 1;     // first sequence this end will (re)send
    std::uint16_t stream_index = 0;      // 0: the session's first connection; k: joins as stream k
  };

  // What the caller does after a frame: send `send` (if any); once `done`, the connection is up
  // with the positions below; once `failure` is set, the handshake is over (tell the peer unless
  // the peer itself reported the error).
  struct Step {
    std::optional<ptp::MessageHeader> send;
    bool done = false;
    Status failure;
    bool peer_reported = false;
    // When done: the server's hello_reply, where the peer's delivery stands, and where this end's
    // record of the peer's stream restarts (a server that did not know the session).
    ptp::HelloDesc peer;
    std::uint64_t peer_delivered = 0;
    std::optional<std::uint64_t> restart_at;
  };

  ClientHandshake(const LinkOptions& options, Start start);

  // The first message (a hello, or a join's hello).
  ptp::MessageHeader hello() const;
  // The next frame's header from the server. After `done` or a failure, every further frame is
  // a failure (kBadState): the caller has moved on.
  Step on_header(const ptp::MessageHeader& h);

  bool joining() const { return start_.stream_index != 0; }

 private:
  enum class Phase { kAwaitReply, kAwaitAck, kOver };
  Step fail(Status why);

  const LinkOptions* opts_;  // the owner's, outliving this
  Start start_;
  Phase phase_ = Phase::kAwaitReply;
  ptp::HelloDesc reply_;  // kept while the proof is checked
};

}  // namespace agp::transport::detail
