#include "client_handshake.hpp"

#include "auth.hpp"
#include "handshake.hpp"

namespace agp::transport::detail {
namespace {

// A server that did not know the session (it restarted) starts its own stream afresh.
std::optional<std::uint64_t> fresh_stream(const ptp::HelloDesc& reply) {
  if ((reply.flags & kFlagNewSession) == 0) return std::nullopt;
  return reply.next_sequence > 0 ? reply.next_sequence - 1 : 0;
}

}  // namespace

ClientHandshake::ClientHandshake(const LinkOptions& options, Start start)
    : opts_(&options), start_(std::move(start)) {}

ptp::MessageHeader ClientHandshake::hello() const {
  ptp::MessageHeader h = base_header(*opts_, ptp::MessageKind::kHello);
  h.hello = capabilities(*opts_);
  h.hello->nonce = start_.nonce;
  h.hello->session_id = start_.session_id;
  if (joining()) {
    h.hello->flags |= kFlagJoin;
    h.hello->stream_index = start_.stream_index;
  } else {
    h.hello->delivered_sequence = start_.delivered;
    h.hello->next_sequence = start_.next_sequence;
  }
  return h;
}

ClientHandshake::Step ClientHandshake::fail(Status why) {
  phase_ = Phase::kOver;
  Step s;
  s.failure = std::move(why);
  return s;
}

ClientHandshake::Step ClientHandshake::on_header(const ptp::MessageHeader& h) {
  if (h.kind == ptp::MessageKind::kError && h.error) {
    Step s = fail(Status(static_cast<ErrorCode>(h.error->code), "the peer reports: " + h.error->message));
    s.peer_reported = true;
    return s;
  }
  switch (phase_) {
    case Phase::kAwaitReply: {
      if (h.kind != ptp::MessageKind::kHelloReply || !h.hello) {
        return fail(make_error(ErrorCode::kHeaderInvalid,
                               "expected hello_reply, got " + std::string(ptp::message_kind_name(h.kind))));
      }
      const ptp::HelloDesc& r = *h.hello;
      if (common_protocol(r) == 0) {
        return fail(make_error(ErrorCode::kProtocolVersionMismatch,
                               "the server offers protocol " + std::to_string(r.min_protocol) + ".." +
                                   std::to_string(r.max_protocol) + "; this end speaks " +
                                   std::to_string(ptp::kProtocolVersion)));
      }
      if (r.session_id != start_.session_id) {
        return fail(make_error(ErrorCode::kHeaderInvalid, "the server answered another session"));
      }
      reply_ = r;
      if (opts_->key.empty()) {
        phase_ = Phase::kOver;
        Step s;
        s.done = true;
        s.peer = reply_;
        s.peer_delivered = r.delivered_sequence;
        s.restart_at = fresh_stream(r);
        return s;
      }
      const auto expect = auth_tag(opts_->key, kServerProof, start_.nonce, r.nonce, start_.session_id,
                                   opts_->fingerprint);
      if (!tags_equal(expect, r.auth_tag)) {
        return fail(make_error(ErrorCode::kAuthenticationFailed, "the server did not prove the pre-shared key"));
      }
      Step s;
      s.send = base_header(*opts_, ptp::MessageKind::kHello);
      s.send->hello = capabilities(*opts_);
      s.send->hello->flags |= kFlagProof | (joining() ? kFlagJoin : 0);
      s.send->hello->session_id = start_.session_id;
      s.send->hello->stream_index = start_.stream_index;
      s.send->hello->auth_tag =
          auth_tag(opts_->key, kClientProof, r.nonce, start_.nonce, start_.session_id, opts_->fingerprint);
      phase_ = Phase::kAwaitAck;
      return s;
    }
    case Phase::kAwaitAck: {
      if (h.kind != ptp::MessageKind::kAck || !h.ack) {
        return fail(make_error(ErrorCode::kHeaderInvalid, "expected the server's ack"));
      }
      phase_ = Phase::kOver;
      Step s;
      s.done = true;
      s.peer = reply_;
      s.peer_delivered = h.ack->cumulative_sequence;
      s.restart_at = fresh_stream(reply_);
      return s;
    }
    case Phase::kOver:
      break;
  }
  return fail(make_error(ErrorCode::kBadState, "a frame after the handshake ended"));
}

}  // namespace agp::transport::detail
