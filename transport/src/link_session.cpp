// A Link's life (internal): dialing, the handshake, up and down, reconnecting, the periodic tick
// (heartbeats, dead peers, deadlines). See docs/transport.md.
#include <algorithm>

#include "agp/transport/interfaces.hpp"
#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"
#include "log.hpp"

namespace agp::transport {

using detail::Clock;

namespace {

bool is_checksum_error(ErrorCode c) {
  return c == ErrorCode::kHeaderChecksumMismatch || c == ErrorCode::kSectionChecksumMismatch;
}

Millis tick_period(const LinkOptions& o) {
  const auto p = std::min(o.heartbeat_interval, o.dead_peer_timeout) / 4;
  return std::clamp(p, Millis(2), Millis(100));
}

}  // namespace

Link::Impl::Impl(std::shared_ptr<detail::EventLoop> event_loop, Role r, LinkOptions o)
    : loop(std::move(event_loop)),
      ctx(loop, &loop->context()),
      role(r),
      opts(std::move(o)),
      tick(*ctx),
      control(opts.limits) {
  reader.set_calibration(opts.calibration);
}

Link::Impl::~Impl() {
  // A peer refused for a reason is told the reason: give the error frame a moment to go out.
  if (telling && telling->telling()) {
    ctx->restart();
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    while (telling->telling() && Clock::now() < until) ctx->run_one_for(std::chrono::milliseconds(10));
  }
  if (conn) conn->close();
  if (dialing) dialing->cancel();
  tick.cancel();
}

Status Link::Impl::usable() const {
  if (state == State::kFailed) return failure_;
  if (state == State::kClosed || state == State::kClosing || we_said_bye) {
    return make_error(ErrorCode::kBadState, "the link is closed");
  }
  return {};
}

void Link::Impl::notify(std::function<void()> fn) {
  if (detail::EventLoop::on_keeper_thread()) {
    deferred.push_back(std::move(fn));
  } else {
    fn();
  }
}

void Link::Impl::run_deferred() {
  while (!deferred.empty()) {
    auto due_now = std::move(deferred);
    deferred.clear();
    for (auto& fn : due_now) {
      if (fn) fn();
    }
  }
}

Status Link::Impl::wait(const std::function<bool()>& done, Clock::time_point until,
                        const char* what) {
  run_deferred();
  auto finished = [&] { return done() || state == State::kFailed; };
  if (opts.busy_poll_us > 0) {  // spin first: no wake-up to pay if the answer comes soon
    const auto spin_until =
        std::min(until, Clock::now() + std::chrono::microseconds(opts.busy_poll_us));
    // Polling the io_context is a system call (epoll_wait) even when nothing is ready; a channel
    // that moves its own transport (UCX) needs it only now and then, for handlers posted to it.
    // With UCX this took a 64-byte round trip from 44 to 26 us.
    for (unsigned i = 0; !finished() && Clock::now() < spin_until; ++i) {
      if (conn) conn->poll();
      if (!conn || !conn->polls_itself() || (i % 8) == 0) {
        ctx->restart();
        ctx->poll();
      }
    }
  }
  const bool ok = detail::run_until(*ctx, finished, until, [this] {
    loop->yield_if_wanted();
    run_deferred();  // handlers the keeper left while it had the loop
  });
  if (ok && done()) return {};
  if (state == State::kFailed) return failure_;
  return make_error(ErrorCode::kTimeout, std::string(what) + ": deadline passed");
}

// ---------------------------------------------------------------- connecting (client)

void Link::Impl::start_connect() {
  state = State::kConnecting;
  deadline = Clock::now() + opts.connect_timeout;
  std::weak_ptr<Impl> weak = weak_from_this();
  auto attempt = backend->dial(host, port, detail::handshake_decoder(opts),
                               [weak](Result<std::shared_ptr<detail::Channel>> c) {
                                 if (auto self = weak.lock()) self->on_connected(std::move(c));
                               });
  if (!attempt) return fail(attempt.status());
  dialing = std::move(attempt).value();
}

void Link::Impl::on_connected(Result<std::shared_ptr<detail::Channel>> channel) {
  dialing.reset();
  if (state != State::kConnecting) return;
  if (!channel) return connection_lost(channel.status());
  attach(std::move(channel).value());
  state = State::kHandshaking;
  deadline = Clock::now() + opts.handshake_timeout;
  auto nonce = detail::fresh_nonce();
  if (!nonce) return fail(nonce.status());
  handshake.emplace(opts, detail::ClientHandshake::Start{session_id, std::move(nonce).value(), delivered,
                                                         unacked.empty() ? next_seq : unacked.front().seq, 0});
  send_control(handshake->hello());
}

void Link::Impl::attach(std::shared_ptr<detail::Channel> c) {
  if (conn != c) {
    if (auto old = release_connection()) old->close();
  }
  conn = std::move(c);
  std::weak_ptr<Impl> weak = weak_from_this();
  const detail::Channel* raw = conn.get();
  conn->start({[weak, raw](ptp::Frame&& f) {
                 if (auto self = weak.lock()) self->on_frame(raw, std::move(f));
               },
               [weak, raw](const Status& why) {
                 if (auto self = weak.lock()) self->on_connection_failure(raw, why);
               },
               nullptr});
}

void Link::Impl::on_connection_failure(const detail::Channel* from, const Status& why) {
  if (from != conn.get()) return;
  if (is_checksum_error(why.code())) {
    ++counters.checksum_failures;
  } else if (why.code() < ErrorCode::kIoError) {
    ++counters.frame_errors;
  }
  // A bad frame: tell the peer why before the connection goes (a damaged frame is resent after
  // reconnecting; a wrongly built one ends the link on both sides).
  if (why.code() >= ErrorCode::kTruncated && why.code() < ErrorCode::kIoError) {
    if (auto c = release_connection()) {
      c->fail_after_telling(why, detail::error_frame(control, opts, why));
    }
  }
  // A frame the peer built wrongly (its checksums passed) comes again after a reconnect: give up.
  if (detail::is_permanent(why.code())) return tell_and_fail(why);
  connection_lost(why);
}

void Link::Impl::on_frame(const detail::Channel* from, ptp::Frame&& frame) {
  if (from != conn.get()) return;
  ++counters.frames_received;
  const ptp::MessageHeader& h = frame.header();
  if (h.kind == ptp::MessageKind::kError) {
    const auto code = static_cast<ErrorCode>(h.error->code);
    Status why(code, "the peer reports: " + h.error->message);
    if (detail::is_permanent(code)) return fail(why);
    return connection_lost(why);
  }
  switch (state) {
    case State::kHandshaking:
      return on_handshake_frame(h);
    case State::kUp:
    case State::kClosing:
      break;
    default:
      return;
  }
  switch (h.kind) {
    case ptp::MessageKind::kTensorPacket:
      return on_tensor_frame(std::move(frame));
    case ptp::MessageKind::kAck:
      return on_ack(h.ack->cumulative_sequence);
    case ptp::MessageKind::kHeartbeat:
      return;
    case ptp::MessageKind::kBye:
      peer_said_bye = true;
      if (!we_said_bye) {
        we_said_bye = true;
        send_control(detail::base_header(opts, ptp::MessageKind::kBye));
      } else if (auto c = release_connection()) {  // our bye was answered: done
        c->close();
        state = State::kClosed;
      }
      return;
    default:
      return tell_and_fail(
          make_error(ErrorCode::kHeaderInvalid,
                     std::string(ptp::message_kind_name(h.kind)) + " after the handshake"));
  }
}

void Link::Impl::on_handshake_frame(const ptp::MessageHeader& h) {
  detail::ClientHandshake::Step step = handshake->on_header(h);
  if (!step.failure) return tell_and_fail(step.failure);
  if (step.send) send_control(std::move(*step.send));
  if (!step.done) return;
  handshake.reset();
  become_up(step.peer, step.peer_delivered, step.restart_at);
}

void Link::Impl::become_up(const ptp::HelloDesc& peer, std::uint64_t peer_delivered,
                           std::optional<std::uint64_t> restart_at) {
  state = State::kUp;
  if (ever_up) ++counters.reconnects;
  ever_up = true;
  backoff = Millis(0);
  conn->set_decoder(detail::session_decoder(opts));
  info.session_id = session_id;
  info.protocol_version = ptp::kProtocolVersion;
  info.local_endpoint = conn->local_endpoint();
  info.local_interface = interface_of(conn->local_address());
  info.remote_endpoint = conn->remote_endpoint();
  info.peer_name = peer.peer_name;
  info.peer_max_frame_bytes = peer.max_frame_bytes;
  info.peer_codecs = peer.codecs;
  info.authenticated = !opts.key.empty();
  info.peer_chunking = (peer.flags & detail::kFlagChunking) != 0;
  info.connected = true;
  peer_max_streams = std::max<std::uint16_t>(peer.max_streams, 1);
  info.peer_max_streams = peer_max_streams;
  info.streams = 1;
  // The peer sends every packet it has not seen acknowledged again, whole, on each connection:
  // what arrived of them before is dropped (a kept chunk would arrive twice).
  clear_inbox();
  // A peer that lost its state (a restarted process) starts its stream afresh.
  if (restart_at) delivered = *restart_at;
  // What the peer already delivered counts as acknowledged; the rest goes again, in order.
  on_ack(peer_delivered);
  if (state != State::kUp || !conn) return;  // the resume position was a lie: refused, link ended
  std::uint64_t resent = 0;
  for (Pending& p : unacked) {
    if (p.transmissions > 0) {
      ++counters.retransmits;
      ++resent;
    }
    ++p.transmissions;
    for (const auto& f : p.frames) {
      conn->send(f);
      ++counters.frames_sent;
    }
  }
  if (detail::log_enabled(LogLevel::kInfo)) {
    const std::string who = info.remote_endpoint + " (session " + std::to_string(session_id) + ")";
    // The listening end says peer_accepted / peer_returned (server.cpp).
    if (counters.reconnects == 0) {
      if (role == Role::kClient) detail::log(LogLevel::kInfo, "connected", "link up with " + who);
    } else {
      if (role == Role::kClient) {
        detail::log(LogLevel::kInfo, "reconnected",
                    "link up again with " + who + ", reconnect " +
                        std::to_string(counters.reconnects));
      }
      detail::log(LogLevel::kInfo, "resumed",
                  "resumed after packet " + std::to_string(acked_upto) + " acknowledged by the peer; " +
                      std::to_string(resent) + " packets sent again");
    }
  }
  schedule_tick();
  open_extra_streams();
  if (handlers.on_connection) {
    notify([this] {
      if (handlers.on_connection) handlers.on_connection(true, Status());
    });
  }
}

void Link::Impl::connection_lost(const Status& why) {
  if (auto c = release_connection()) c->close();
  close_extras();
  if (dialing) {
    dialing->cancel();
    dialing.reset();
  }
  info.connected = false;
  clear_inbox();  // undelivered packets are unacknowledged: the peer sends them again
  if (state == State::kFailed || state == State::kClosed) return;
  if (peer_said_bye || we_said_bye) {
    state = State::kClosed;
    return;
  }
  if (!ever_up) return fail(why);  // the first connect reports its error to connect()
  const bool was_down = state == State::kDown || state == State::kConnecting ||
                        state == State::kHandshaking;
  if (!was_down || state == State::kUp) down_since = Clock::now();
  if (state == State::kUp) {
    detail::log(LogLevel::kWarning, "connection_lost",
                "lost the connection to " + info.remote_endpoint + ": " + why.to_string() +
                    (role == Role::kClient ? "; reconnecting" : "; waiting for the peer to return"));
    if (handlers.on_connection) notify([this, why] {
      if (handlers.on_connection) handlers.on_connection(false, why);
    });
  }
  state = State::kDown;
  if (role == Role::kClient) {
    backoff =
        backoff.count() == 0 ? opts.reconnect_initial : std::min(backoff * 2, opts.reconnect_max);
    next_attempt = Clock::now() + backoff;
  }
  failure_ = why;  // the last reason, reported if we give up
  schedule_tick();
}

void Link::Impl::fail(const Status& why) {
  if (state == State::kFailed) return;
  const bool was_up = state == State::kUp;
  state = State::kFailed;
  failure_ = why;
  if (ever_up) detail::log(LogLevel::kError, "link_failed", "the link ended: " + why.to_string());
  if (auto c = release_connection()) c->close();
  close_extras();
  info.connected = false;
  tick.cancel();
  if (was_up && handlers.on_connection) {
    notify([this, why] {
      if (handlers.on_connection) handlers.on_connection(false, why);
    });
  }
}

void Link::Impl::tell_and_fail(const Status& why) {
  if (auto c = release_connection()) {
    c->fail_after_telling(why, detail::error_frame(control, opts, why));
    if (c->telling()) telling = c;  // flushed by later calls, or at the latest by ~Impl
  }
  fail(why);
}

void Link::Impl::abort(const Status& why) {
  if (ended()) return;
  detail::log(LogLevel::kWarning, "aborted", "ending the link: " + why.message());
  tell_and_fail(why);
}

std::string Link::Impl::unacked_text() const {
  if (unacked.empty()) return "no packets";
  const std::uint64_t first = unacked.front().seq, last = unacked.back().seq;
  return std::to_string(unacked.size()) + (unacked.size() == 1 ? " packet (" : " packets (") +
         std::to_string(first) + (first == last ? "" : ".." + std::to_string(last)) + ")";
}

Status Link::Impl::lost_status() const {
  if (state == State::kFailed) {
    return Status(failure_.code(), failure_.message() + "; " + unacked_text() +
                                       " never acknowledged (not delivered, or not confirmed)");
  }
  return make_error(ErrorCode::kConnectionClosed,
                    "the link closed with " + unacked_text() +
                        " unacknowledged: the peer did not confirm them (they may be lost)");
}

std::shared_ptr<detail::Channel> Link::Impl::release_connection() {
  if (conn) {
    closed_bytes_in += conn->bytes_read();
    closed_bytes_out += conn->bytes_written();
  }
  return std::move(conn);
}

void Link::Impl::warn_if_stalled(detail::Clock::time_point now) {
  if (!detail::log_enabled(LogLevel::kWarning)) return;
  auto ms = [](auto d) { return std::to_string(std::chrono::duration_cast<Millis>(d).count()); };
  if (!unacked.empty() && unacked.front().seq != send_stall_warned &&
      now - unacked.front().posted >= opts.stall_warning) {
    const Pending& p = unacked.front();
    send_stall_warned = p.seq;
    detail::log(LogLevel::kWarning, "send_stalled",
                "packet " + std::to_string(p.seq) + " has waited " + ms(now - p.posted) +
                    " ms for its acknowledgement (" + std::to_string(unacked.size()) +
                    " packets, " + std::to_string(unacked_bytes) +
                    " bytes unacknowledged): the receiver is slow, stalled or not receiving");
  }
  if (const InPacket* q = due(); q && !q->complete() && q->seq != receive_stall_warned &&
      now - q->last_arrival >= opts.stall_warning) {
    receive_stall_warned = q->seq;
    detail::log(LogLevel::kWarning, "receive_stalled",
                "packet " + std::to_string(q->seq) + " has " + std::to_string(q->received()) +
                    " of its " + std::to_string(q->expected_chunks) + " chunks; none came for " +
                    ms(now - q->last_arrival) + " ms");
  }
}

void Link::Impl::schedule_tick() {
  std::weak_ptr<Impl> weak = weak_from_this();
  tick.expires_after(tick_period(opts));
  tick.async_wait([weak](const asio::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->on_tick();
  });
}

void Link::Impl::on_tick() {
  const auto now = Clock::now();
  switch (state) {
    case State::kUp:
    case State::kClosing: {
      if (!conn) break;
      if (now - conn->last_read() >= opts.dead_peer_timeout && conn->unread_bytes() == 0) {
        return connection_lost(make_error(
            ErrorCode::kTimeout, "nothing heard from the peer for " +
                                     std::to_string(opts.dead_peer_timeout.count()) + " ms"));
      }
      for (std::size_t i = 0; i < extra.size(); ++i) {  // a stream whose writes stopped draining
        const auto& e = extra[i];
        if (e && e->queued_frames() > 0 && now - e->last_write() >= opts.dead_peer_timeout) {
          return connection_lost(make_error(ErrorCode::kTimeout,
                                            "stream " + std::to_string(i + 1) + " stopped moving"));
        }
      }
      for (std::size_t i = joining.size(); i-- > 0;) {
        if (now >= joining[i].deadline) drop_join(joining[i].index);
      }
      warn_if_stalled(now);
      if (now - conn->last_write() >= opts.heartbeat_interval && conn->queued_frames() == 0) {
        ++counters.heartbeats_sent;
        send_control(detail::base_header(opts, ptp::MessageKind::kHeartbeat), false);
      }
      break;
    }
    case State::kConnecting:
    case State::kHandshaking:
      if (now >= deadline) {
        return connection_lost(
            make_error(ErrorCode::kTimeout, state == State::kConnecting
                                                ? "connect: no answer in time"
                                                : "handshake: the peer did not answer in time"));
      }
      break;
    case State::kDown:
      if (now - down_since >= opts.reconnect_give_up) {
        return fail(
            make_error(ErrorCode::kPeerLost, "the peer stayed unreachable for " +
                                                 std::to_string(opts.reconnect_give_up.count()) +
                                                 " ms (last error: " + failure_.message() + ")"));
      }
      if (role == Role::kClient && now >= next_attempt) start_connect();
      break;
    case State::kClosed:
    case State::kFailed:
      return;
  }
  schedule_tick();
}

}  // namespace agp::transport
