// The server's side of one handshake, as a state machine fed with the headers of the frames a new
// connection brings: no socket, no clock (internal). What it needs of the server's sessions it asks
// a SessionDirectory. docs/transport.md describes the exchange.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "agp/ptp/message.hpp"
#include "agp/transport/link.hpp"

namespace agp::transport::detail {

// The server's sessions as a handshake sees them.
class SessionDirectory {
 public:
  struct Known {
    bool up = false;                  // its link is up (a join needs that)
    std::uint64_t delivered = 0;      // highest client sequence delivered
    std::uint64_t next_sequence = 1;  // first sequence the server will (re)send
  };
  virtual ~SessionDirectory() = default;
  // The session of this id if the server has a live (not closed or failed) link for it.
  virtual std::optional<Known> find(std::uint64_t session_id) const = 0;
  // New sessions admitted and not yet taken by Server::accept.
  virtual std::size_t waiting() const = 0;
};

class ServerHandshake {
 public:
  // New sessions beyond this many waiting for accept() are refused (the client retries later).
  static constexpr std::size_t kMaxWaitingSessions = 16;

  // What the caller does after a frame: send `send` (if any); once `admitted`, the connection
  // carries the session described below; once `failure` is set, tell the peer why and close.
  struct Step {
    std::optional<ptp::MessageHeader> send;
    bool admitted = false;
    Status failure;
    // When admitted: the client's first hello; whether it joins a session as an extra stream;
    // whether the server knew the session (else a new link is made); where the client's delivery
    // stands; where the server's record of the client's stream restarts (new sessions).
    ptp::HelloDesc hello;
    bool join = false;
    bool known = false;
    std::uint64_t peer_delivered = 0;
    std::optional<std::uint64_t> restart_at;
  };

  ServerHandshake(const LinkOptions& options, std::vector<std::uint8_t> nonce);

  // The next frame's header from the client. After admission or a failure every further frame
  // is a failure (kBadState).
  Step on_header(const ptp::MessageHeader& h, const SessionDirectory& sessions);

  // Whether the client has said hello (a connection that has not is the first dropped when too
  // many wait).
  bool greeted() const { return first_.has_value(); }

  // Where a session's stream resumes when this server has no link for it: a recorded position
  // (LinkOptions::known_sessions), else just before the client's next packet.
  static std::uint64_t resume_point(const LinkOptions& options, const ptp::HelloDesc& hello);

 private:
  Step on_first_hello(const ptp::HelloDesc& hello, const SessionDirectory& sessions);
  Step on_proof(const ptp::HelloDesc& hello, const SessionDirectory& sessions);
  // The admission of the session the first hello names, with `ack` to send (key handshakes).
  Step admit(const SessionDirectory& sessions, bool ack);
  Step fail(Status why);

  const LinkOptions* opts_;  // the owner's, outliving this
  std::vector<std::uint8_t> nonce_;
  std::optional<ptp::HelloDesc> first_;
  bool replied_known_ = false;  // the reply's resume positions were a known session's
  bool over_ = false;
};

}  // namespace agp::transport::detail
