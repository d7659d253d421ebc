#include "server_handshake.hpp"

#include <algorithm>

#include "auth.hpp"
#include "handshake.hpp"

namespace agp::transport::detail {

ServerHandshake::ServerHandshake(const LinkOptions& options, std::vector<std::uint8_t> nonce)
    : opts_(&options), nonce_(std::move(nonce)) {}

std::uint64_t ServerHandshake::resume_point(const LinkOptions& options, const ptp::HelloDesc& hello) {
  std::uint64_t at = hello.next_sequence > 0 ? hello.next_sequence - 1 : 0;
  for (const auto& k : options.known_sessions) {
    if (k.session_id == hello.session_id) at = std::max(at, k.delivered);
  }
  return at;
}

ServerHandshake::Step ServerHandshake::fail(Status why) {
  over_ = true;
  Step s;
  s.failure = std::move(why);
  return s;
}

ServerHandshake::Step ServerHandshake::on_header(const ptp::MessageHeader& h,
                                                 const SessionDirectory& sessions) {
  if (over_) return fail(make_error(ErrorCode::kBadState, "a frame after the handshake ended"));
  if (h.kind != ptp::MessageKind::kHello || !h.hello) {
    return fail(make_error(ErrorCode::kHeaderInvalid,
                           "expected hello, got " + std::string(ptp::message_kind_name(h.kind))));
  }
  return first_ ? on_proof(*h.hello, sessions) : on_first_hello(*h.hello, sessions);
}

ServerHandshake::Step ServerHandshake::on_first_hello(const ptp::HelloDesc& hello,
                                                      const SessionDirectory& sessions) {
  if (hello.flags & kFlagProof) {
    return fail(make_error(ErrorCode::kHeaderInvalid, "a proof before the challenge"));
  }
  if (common_protocol(hello) == 0) {
    return fail(make_error(ErrorCode::kProtocolVersionMismatch,
                           "the client speaks protocol " + std::to_string(hello.min_protocol) + ".." +
                               std::to_string(hello.max_protocol) + "; this server speaks " +
                               std::to_string(ptp::kProtocolVersion)));
  }
  const bool client_has_key = (hello.flags & kFlagKey) != 0;
  if (!opts_->key.empty() && !client_has_key) {
    return fail(make_error(ErrorCode::kAuthenticationFailed, "this server requires a pre-shared key"));
  }
  if (opts_->key.empty() && client_has_key) {
    return fail(make_error(ErrorCode::kAuthenticationFailed, "this server has no pre-shared key configured"));
  }
  const std::optional<SessionDirectory::Known> known = sessions.find(hello.session_id);
  if (hello.flags & kFlagJoin) {  // another stream for a session that is up
    const auto most = std::clamp<std::uint16_t>(opts_->streams, 1, kMaxStreams);
    if (!known || !known->up) {
      return fail(make_error(ErrorCode::kBadState, "no session of this id is up to join"));
    }
    if (hello.stream_index == 0 || hello.stream_index >= most) {
      return fail(make_error(ErrorCode::kCapabilityMismatch,
                             "stream " + std::to_string(hello.stream_index) + ": this server takes " +
                                 std::to_string(most) + " streams per link"));
    }
  } else if (!known && sessions.waiting() >= kMaxWaitingSessions) {
    // A returning session is re-attached whatever the queue holds.
    return fail(make_error(ErrorCode::kBadState, "the server has " + std::to_string(sessions.waiting()) +
                                                     " sessions waiting to be accepted; try later"));
  }
  first_ = hello;
  Step s;
  s.send = base_header(*opts_, ptp::MessageKind::kHelloReply);
  ptp::HelloDesc& r = *(s.send->hello = capabilities(*opts_));
  r.nonce = nonce_;
  r.session_id = hello.session_id;
  // Resume positions. Reading them before the key is proven reveals two counters at most;
  // nothing is attached until then.
  replied_known_ = known.has_value();
  if (known) {
    r.delivered_sequence = known->delivered;
    r.next_sequence = known->next_sequence;
  } else {
    r.flags |= kFlagNewSession;
    r.delivered_sequence = resume_point(*opts_, hello);
    r.next_sequence = 1;
  }
  if (!opts_->key.empty()) {
    r.auth_tag = auth_tag(opts_->key, kServerProof, hello.nonce, nonce_, hello.session_id, opts_->fingerprint);
    return s;
  }
  Step a = admit(sessions, false);
  a.send = std::move(s.send);
  return a;
}

ServerHandshake::Step ServerHandshake::on_proof(const ptp::HelloDesc& hello,
                                                const SessionDirectory& sessions) {
  if (!(hello.flags & kFlagProof) || hello.session_id != first_->session_id) {
    return fail(make_error(ErrorCode::kHeaderInvalid, "expected the client's proof"));
  }
  const auto expect =
      auth_tag(opts_->key, kClientProof, nonce_, first_->nonce, first_->session_id, opts_->fingerprint);
  if (!tags_equal(expect, hello.auth_tag)) {
    return fail(make_error(ErrorCode::kAuthenticationFailed, "the client did not prove the pre-shared key"));
  }
  return admit(sessions, true);
}

ServerHandshake::Step ServerHandshake::admit(const SessionDirectory& sessions, bool ack) {
  // The session is looked up again: it may have ended while the key was proven.
  const std::optional<SessionDirectory::Known> known = sessions.find(first_->session_id);
  const bool join = (first_->flags & kFlagJoin) != 0;
  if (join && (!known || !known->up)) {
    return fail(make_error(ErrorCode::kBadState, "no session of this id is up to join"));
  }
  if (!join && ack && known.has_value() != replied_known_) {
    // The reply told the client where its stream resumes as the server saw it then; the session
    // came or went while the key was proven, so those positions no longer hold.
    return fail(make_error(ErrorCode::kBadState, "the session changed during the handshake; try again"));
  }
  if (!join && !known && sessions.waiting() >= kMaxWaitingSessions) {
    // Not a permanent refusal: the client backs off and tries again.
    return fail(make_error(ErrorCode::kBadState, "the server has " + std::to_string(sessions.waiting()) +
                                                     " sessions waiting to be accepted; try later"));
  }
  over_ = true;
  Step s;
  s.admitted = true;
  s.hello = *first_;
  s.join = join;
  s.known = known.has_value();
  // A new session adopts the client's numbering; a known one resumes where it was. (What the
  // client delivered of a stream this process never sent is not ours to count.)
  s.peer_delivered = known ? first_->delivered_sequence : 0;
  if (!known) s.restart_at = resume_point(*opts_, *first_);
  if (ack) {  // confirms the proof; a session's first connection learns where its stream resumes
    s.send = base_header(*opts_, ptp::MessageKind::kAck);
    s.send->ack = ptp::AckDesc{join ? 0 : (known ? known->delivered : resume_point(*opts_, *first_))};
  }
  return s;
}

}  // namespace agp::transport::detail
