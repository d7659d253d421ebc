#include <algorithm>
#include <cstring>

#include "agp/transport/interfaces.hpp"
#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"
#include "tcp_backend.hpp"

namespace agp::transport {

using detail::Clock;

namespace {

constexpr std::size_t kMaxKeptReceipts = 4096;
// Encode helpers wait this long for the next packet before sleeping: a spinning helper would take
// a core from the rest of the host between packets.
constexpr int kEncodeSpinMicros = 200;

double micros_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::uint64_t wall_clock_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

bool is_checksum_error(ErrorCode c) {
  return c == ErrorCode::kHeaderChecksumMismatch || c == ErrorCode::kSectionChecksumMismatch;
}

bool same_codec(const ptp::PacketCodec& a, const ptp::PacketCodec& b) {
  return a.config.id == b.config.id && a.config.bits == b.config.bits &&
         a.config.norm_dtype == b.config.norm_dtype && a.config.seed == b.config.seed &&
         a.config.raw_dtype == b.config.raw_dtype && a.ec.bits_per_value == b.ec.bits_per_value &&
         a.ec.fixed_bits == b.ec.fixed_bits && a.ec.reserved_bytes == b.ec.reserved_bytes &&
         a.ec.seed == b.ec.seed && a.ec.zstd_level == b.ec.zstd_level;
}

Millis tick_period(const LinkOptions& o) {
  const auto p = std::min(o.heartbeat_interval, o.dead_peer_timeout) / 4;
  return std::clamp(p, Millis(2), Millis(100));
}

}  // namespace

Link::Impl::Impl(std::shared_ptr<asio::io_context> context, Role r, LinkOptions o)
    : ctx(std::move(context)),
      role(r),
      opts(std::move(o)),
      backend(detail::make_tcp_backend(*ctx, opts)),
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

Link::Impl::Encoder& Link::Impl::encoder_for(const ptp::PacketCodec& codec) {
  auto hit = std::find_if(encoders.begin(), encoders.end(),
                          [&](const Encoder& e) { return same_codec(e.codec, codec); });
  if (hit != encoders.end()) {
    std::rotate(encoders.begin(), hit, hit + 1);
    return encoders.front();
  }
  const int threads = std::clamp<int>(opts.encode_threads, 1, detail::kMaxEncodeThreads);
  if (threads > 1 &&
      !encode_pool) {  // started at the first packet: a receiving end never starts them
    encode_pool = std::make_unique<codec::ThreadPool>(threads, kEncodeSpinMicros);
  }
  if (encoders.size() == kKeptEncoders) encoders.pop_back();
  Encoder e{codec, {}};
  for (int i = 0; i < threads; ++i) e.writers.emplace_back(codec, opts.limits);
  encoders.insert(encoders.begin(), std::move(e));
  return encoders.front();
}

Status Link::Impl::usable() const {
  if (state == State::kFailed) return failure_;
  if (state == State::kClosed || state == State::kClosing || we_said_bye) {
    return make_error(ErrorCode::kBadState, "the link is closed");
  }
  return {};
}

Status Link::Impl::wait(const std::function<bool()>& done, Clock::time_point until,
                        const char* what) {
  auto finished = [&] { return done() || state == State::kFailed; };
  if (opts.busy_poll_us > 0) {  // spin first: no wake-up to pay if the answer comes soon
    const auto spin_until =
        std::min(until, Clock::now() + std::chrono::microseconds(opts.busy_poll_us));
    while (!finished() && Clock::now() < spin_until) {
      ctx->restart();
      ctx->poll();
    }
  }
  const bool ok = detail::run_until(*ctx, finished, until);
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
  for (Pending& p : unacked) {
    if (p.transmissions > 0) ++counters.retransmits;
    ++p.transmissions;
    for (const auto& f : p.frames) {
      conn->send(f);
      ++counters.frames_sent;
    }
  }
  schedule_tick();
  open_extra_streams();
  if (handlers.on_connection) handlers.on_connection(true, Status());
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
  if (state == State::kUp && handlers.on_connection) handlers.on_connection(false, why);
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
  if (auto c = release_connection()) c->close();
  close_extras();
  info.connected = false;
  tick.cancel();
  if (was_up && handlers.on_connection) handlers.on_connection(false, why);
}

void Link::Impl::tell_and_fail(const Status& why) {
  if (auto c = release_connection()) {
    c->fail_after_telling(why, detail::error_frame(control, opts, why));
    if (c->telling()) telling = c;  // flushed by later calls, or at the latest by ~Impl
  }
  fail(why);
}

std::shared_ptr<detail::Channel> Link::Impl::release_connection() {
  if (conn) {
    closed_bytes_in += conn->bytes_read();
    closed_bytes_out += conn->bytes_written();
  }
  return std::move(conn);
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

// ---------------------------------------------------------------- extra streams

std::uint16_t Link::Impl::wanted_streams() const {
  const auto mine = std::clamp<std::uint16_t>(opts.streams, 1, detail::kMaxStreams);
  return std::min<std::uint16_t>(mine, std::max<std::uint16_t>(peer_max_streams, 1));
}

void Link::Impl::open_extra_streams() {
  if (role != Role::kClient || state != State::kUp) return;
  const std::uint16_t n = wanted_streams();
  if (extra.size() < static_cast<std::size_t>(n - 1)) extra.resize(n - 1u);
  for (std::uint16_t i = 1; i < n; ++i) {
    const bool dialing_it =
        std::any_of(joining.begin(), joining.end(), [&](const Joining& j) { return j.index == i; });
    if (!extra[i - 1u] && !dialing_it) start_join(i);
  }
}

void Link::Impl::start_join(std::uint16_t index) {
  Joining j;
  j.index = index;
  j.deadline = Clock::now() + opts.connect_timeout + opts.handshake_timeout;
  std::weak_ptr<Impl> weak = weak_from_this();
  auto attempt = backend->dial(host, port, detail::handshake_decoder(opts),
                               [weak, index](Result<std::shared_ptr<detail::Channel>> c) {
                                 if (auto self = weak.lock()) self->on_join_connected(index, std::move(c));
                               });
  if (!attempt) return;
  j.dial = std::move(attempt).value();
  joining.push_back(std::move(j));
}

void Link::Impl::on_join_connected(std::uint16_t index, Result<std::shared_ptr<detail::Channel>> channel) {
  auto it = std::find_if(joining.begin(), joining.end(),
                         [&](const Joining& j) { return j.index == index; });
  if (it == joining.end()) return;
  it->dial.reset();
  if (!channel) return drop_join(index);
  auto nonce = detail::fresh_nonce();
  if (!nonce) return drop_join(index);
  it->handshake.emplace(opts, detail::ClientHandshake::Start{session_id, std::move(nonce).value(), 0, 0, index});
  it->conn = std::move(channel).value();
  std::weak_ptr<Impl> weak = weak_from_this();
  it->conn->start({[weak, index](ptp::Frame&& f) {
                     if (auto self = weak.lock()) self->on_join_frame(index, std::move(f));
                   },
                   [weak, index](const Status&) {
                     if (auto self = weak.lock()) self->drop_join(index);
                   },
                   nullptr});
  if (auto f = detail::control_frame(control, it->handshake->hello())) it->conn->send(std::move(f), true);
}

void Link::Impl::on_join_frame(std::uint16_t index, ptp::Frame&& frame) {
  auto it = std::find_if(joining.begin(), joining.end(),
                         [&](const Joining& j) { return j.index == index; });
  if (it == joining.end() || state != State::kUp) return drop_join(index);
  detail::ClientHandshake::Step step = it->handshake->on_header(frame.header());
  // A stream that cannot join is dropped; the session goes on with the streams it has.
  if (!step.failure) return drop_join(index);
  if (step.send) {
    if (auto f = detail::control_frame(control, std::move(*step.send))) it->conn->send(std::move(f), true);
  }
  if (!step.done) return;
  auto c = it->conn;
  joining.erase(it);
  attach_extra(index, std::move(c));
}

void Link::Impl::drop_join(std::uint16_t index) {
  auto it = std::find_if(joining.begin(), joining.end(),
                         [&](const Joining& j) { return j.index == index; });
  if (it == joining.end()) return;
  Joining j = std::move(*it);
  joining.erase(it);
  if (j.conn) j.conn->close();
  if (j.dial) j.dial->cancel();
}

void Link::Impl::attach_extra(std::uint16_t index, std::shared_ptr<detail::Channel> c) {
  if (index == 0 || index > detail::kMaxStreams) return c->close();
  if (extra.size() < index) extra.resize(index);
  if (auto& old = extra[index - 1u]) {
    closed_bytes_in += old->bytes_read();
    closed_bytes_out += old->bytes_written();
    old->close();
  }
  extra[index - 1u] = c;
  c->set_decoder(detail::session_decoder(opts));
  std::weak_ptr<Impl> weak = weak_from_this();
  const detail::Channel* raw = c.get();
  c->start({[weak, raw](ptp::Frame&& f) {
              if (auto self = weak.lock()) self->on_extra_frame(raw, std::move(f));
            },
            [weak, raw](const Status& why) {
              auto self = weak.lock();
              if (!self) return;
              for (const auto& e : self->extra) {
                if (e.get() == raw) return self->connection_lost(why);
              }
            },
            nullptr});
  info.streams = static_cast<std::uint16_t>(
      1 + std::count_if(extra.begin(), extra.end(), [](const auto& e) { return e != nullptr; }));
}

void Link::Impl::on_extra_frame(const detail::Channel* from, ptp::Frame&& frame) {
  if (std::none_of(extra.begin(), extra.end(), [&](const auto& e) { return e.get() == from; })) {
    return;
  }
  ++counters.frames_received;
  const ptp::MessageHeader& h = frame.header();
  if (h.kind == ptp::MessageKind::kError) {
    return connection_lost(
        Status(static_cast<ErrorCode>(h.error->code), "the peer reports: " + h.error->message));
  }
  if (h.kind == ptp::MessageKind::kTensorPacket &&
      (state == State::kUp || state == State::kClosing)) {
    on_tensor_frame(std::move(frame));
  }
}

void Link::Impl::close_extras() {
  for (auto& e : extra) {
    if (!e) continue;
    closed_bytes_in += e->bytes_read();
    closed_bytes_out += e->bytes_written();
    e->close();
  }
  extra.clear();
  while (!joining.empty()) drop_join(joining.front().index);
  info.streams = conn ? 1 : 0;
}

detail::Channel* Link::Impl::stream_for(std::uint32_t chunk) const {
  std::vector<detail::Channel*> up;
  if (conn) up.push_back(conn.get());
  for (const auto& e : extra) {
    if (e && e->is_open()) up.push_back(e.get());
  }
  return up.empty() ? nullptr : up[chunk % up.size()];
}

// ---------------------------------------------------------------- data

void Link::Impl::send_control(ptp::MessageHeader h, bool urgent) {
  if (!conn) return;
  auto f = detail::control_frame(control, std::move(h));
  if (!f) return;
  conn->send(std::move(f), urgent);
  ++counters.frames_sent;
}

void Link::Impl::send_ack() {
  ptp::MessageHeader h = detail::base_header(opts, ptp::MessageKind::kAck);
  h.ack = ptp::AckDesc{delivered};
  send_control(std::move(h));
}

void Link::Impl::on_ack(std::uint64_t cumulative) {
  if (cumulative > sent_upto) {
    // Acknowledging what was never (completely) sent: a broken or lying peer. Counting it would
    // report packets delivered that were not.
    return refuse(make_error(ErrorCode::kHeaderInvalid,
                             "the peer acknowledged packet " + std::to_string(cumulative) +
                                 ", but only packets up to " + std::to_string(sent_upto) +
                                 " were sent"));
  }
  while (!unacked.empty() && unacked.front().seq <= cumulative) {
    Pending& p = unacked.front();
    Receipt r;
    r.sequence = p.seq;
    r.wire_bytes = p.bytes;
    r.chunks = p.chunks;
    r.encode_us = p.encode_us;
    r.latency_us = micros_since(p.posted);
    unacked_bytes -= p.bytes;
    ++counters.packets_acked;
    receipts[p.seq] = r;
    if (receipts.size() > kMaxKeptReceipts) receipts.erase(receipts.begin());
    unacked.pop_front();
    if (handlers.on_acked) handlers.on_acked(r);
  }
  acked_upto = std::max(acked_upto, cumulative);
}

Link::Impl::InPacket* Link::Impl::due() {
  auto it = inbox.find(delivered + 1);
  return it == inbox.end() || it->second.received() == 0 ? nullptr : &it->second;
}

void Link::Impl::pause_or_resume_reading() {
  // Stop reading while enough complete packets wait for the application (TCP then pushes back on
  // the sender); never while the packet due next is incomplete, or its missing chunks could sit
  // behind the pause.
  std::size_t complete = 0;
  for (const auto& [seq, p] : inbox) complete += p.complete() ? 1 : 0;
  const InPacket* next = due();
  // A session the application has not accepted yet reads nothing: peers cannot fill the memory of
  // links nobody serves.
  const bool pause = !accepted || (complete >= std::max<std::uint32_t>(opts.window_packets, 1) &&
                                   next && next->complete());
  if (conn) conn->set_reading(!pause);
  for (const auto& e : extra) {
    if (e) e->set_reading(!pause);
  }
}

void Link::Impl::clear_inbox() {
  inbox.clear();
  inbox_bytes = 0;
}

void Link::Impl::refuse(const Status& why) {
  ++counters.frame_errors;
  tell_and_fail(why);
}

void Link::Impl::on_tensor_frame(ptp::Frame&& frame) {
  const ptp::MessageHeader& h = frame.header();
  if (h.sequence <= delivered) {
    ++counters.duplicates_dropped;
    return;
  }
  auto broken = [&](const std::string& why) {
    refuse(make_error(ErrorCode::kHeaderInvalid, why));
  };
  // The sender keeps at most its window unacknowledged; a packet far beyond ours is not one.
  const std::uint64_t ahead =
      4 * static_cast<std::uint64_t>(std::max<std::uint32_t>(opts.window_packets, 1));
  if (h.sequence - delivered > ahead) {
    return broken("packet " + std::to_string(h.sequence) + " is more than " +
                  std::to_string(ahead) + " packets ahead of " + std::to_string(delivered));
  }
  // Before anything is kept (or the application sizes a buffer from the descriptor): can this
  // frame be decoded into its tensor at all?
  if (Status s = reader.verify(h); !s) {
    return refuse(Status(s.code(), "packet " + std::to_string(h.sequence) + ": " + s.message()));
  }
  if (inbox_bytes + frame.frame_bytes() > opts.receive_buffer_bytes) {
    return refuse(make_error(
        ErrorCode::kBodyTooLarge,
        "the peer sent more than " + std::to_string(opts.receive_buffer_bytes) +
            " bytes of undelivered packets (LinkOptions::receive_buffer_bytes)"));
  }
  const std::uint64_t dim = h.tensor->shape[h.tensor->vector_axis];
  const std::uint64_t vectors = *ptp::shape_element_count(h.tensor->shape) / dim;
  const ptp::ChunkDesc chunk = h.chunk.value_or(ptp::ChunkDesc{0, 1, 0, vectors});
  const std::string where =
      "chunk " + std::to_string(chunk.index) + " of packet " + std::to_string(h.sequence);
  auto found = inbox.find(h.sequence);
  const bool first = found == inbox.end();
  if (!first) {
    const InPacket& q = found->second;
    ptp::CodecDesc mine = *h.codec, theirs = *q.header->codec;
    mine.original_bytes = theirs.original_bytes = 0;  // the chunk's own size
    if (chunk.count != q.expected_chunks) {
      return broken(where + " says the packet has " + std::to_string(chunk.count) +
                    " chunks; an earlier chunk said " + std::to_string(q.expected_chunks));
    }
    if (q.chunks.count(chunk.index)) return broken(where + " arrived twice");
    if (h.tensor != q.header->tensor || mine != theirs || h.stream_id != q.header->stream_id) {
      return broken(where + " describes another tensor, codec or stream than its other chunks");
    }
    // Disjoint from every range received: the neighbours on either side are all that can overlap.
    auto next = q.ranges.lower_bound(chunk.vector_offset);
    if (next != q.ranges.end() && next->first < chunk.vector_offset + chunk.vector_count) {
      return broken(where + " covers vectors another chunk already carried");
    }
    if (next != q.ranges.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second > chunk.vector_offset) {
        return broken(where + " covers vectors another chunk already carried");
      }
    }
  }
  InPacket& p = inbox[h.sequence];
  if (first) {
    p.seq = h.sequence;
    p.expected_chunks = chunk.count;
    p.vectors = vectors;
  }
  if (!p.header || chunk.index == 0) p.header = h;
  p.ranges.emplace(chunk.vector_offset, chunk.vector_count);
  p.covered += chunk.vector_count;
  p.wire_bytes += frame.frame_bytes();
  inbox_bytes += frame.frame_bytes();
  p.chunks[chunk.index].frame = std::move(frame);
  p.to_decode.push_back(chunk.index);
  // Each chunk carries at least one vector, so the chunks still missing need as many vectors.
  const std::uint64_t missing = p.expected_chunks - p.received();
  if (missing > p.vectors - p.covered || (missing == 0 && p.covered != p.vectors)) {
    return broken("the chunks of packet " + std::to_string(p.seq) +
                  " cannot cover its vectors exactly once");
  }
  pause_or_resume_reading();
  if (first && handlers.on_packet) handlers.on_packet();
}

// ---------------------------------------------------------------- Link API

Link::Link(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Link::~Link() = default;

Result<std::unique_ptr<Link>> Link::connect(const std::string& host, std::uint16_t port,
                                            const LinkOptions& options) {
  AGP_RETURN_IF_ERROR(validate(options));
  auto impl =
      std::make_shared<Impl>(std::make_shared<asio::io_context>(1), Impl::Role::kClient, options);
  auto sid = detail::random_u64();
  if (!sid) return sid.status();
  impl->session_id = *sid;
  impl->host = host;
  impl->port = port;
  impl->start_connect();
  impl->schedule_tick();
  const auto until = Clock::now() + options.connect_timeout + options.handshake_timeout;
  AGP_RETURN_IF_ERROR(
      impl->wait([&] { return impl->state == Impl::State::kUp; }, until, "connect"));
  return std::unique_ptr<Link>(new Link(std::move(impl)));
}

Result<std::uint64_t> Link::post(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                                 const PacketMeta& meta, Millis timeout,
                                 std::shared_ptr<const void> keep_alive) {
  Impl& m = *impl_;
  AGP_RETURN_IF_ERROR(m.usable());
  AGP_RETURN_IF_ERROR(tensor.validate());
  const auto until = Clock::now() + timeout;
  const CodecId id = codec.config.id;
  ptp::HelloDesc peer_caps;
  peer_caps.codecs = m.info.peer_codecs;
  if (m.ever_up && !detail::peer_supports(peer_caps, id, 0)) {
    return make_error(ErrorCode::kCapabilityMismatch,
                      "the peer cannot decode " + std::string(codec_name(id)));
  }
  std::uint64_t original = dtype_size(tensor.dtype);
  for (std::uint64_t d : tensor.shape) original *= d;
  // Room in the window (one packet always fits, however large).
  AGP_RETURN_IF_ERROR(m.wait(
      [&] {
        return m.unacked.empty() || (m.unacked.size() < m.opts.window_packets &&
                                     m.unacked_bytes + original <= m.opts.window_bytes);
      },
      until, "post: waiting for room in the send window"));
  AGP_RETURN_IF_ERROR(m.usable());

  Impl::Encoder& enc = m.encoder_for(codec);
  const std::uint64_t vectors = tensor.vector_count();
  const std::uint64_t per_chunk = m.opts.chunk_vectors;
  const bool chunked = per_chunk > 0 && vectors > per_chunk && m.info.peer_chunking &&
                       ptp::TensorPacketWriter::chunkable(id);
  const auto chunks =
      static_cast<std::uint32_t>(chunked ? (vectors + per_chunk - 1) / per_chunk : 1);

  Impl::Pending p;
  p.seq = m.next_seq++;
  p.chunks = chunks;
  p.posted = Clock::now();
  p.transmissions = m.state == Impl::State::kUp ? 1 : 0;
  const std::uint64_t seq = p.seq;
  m.unacked.push_back(std::move(p));
  ++m.counters.packets_sent;
  // Acks arriving between chunks pop older packets, so find ours by its number (unacked packets
  // are consecutive, and an ack of ours before its last chunk is out ends the link: on_ack).
  auto mine = [&]() -> Impl::Pending& { return m.unacked[seq - m.unacked.front().seq]; };

  ptp::MessageHeader h = detail::base_header(m.opts, ptp::MessageKind::kTensorPacket);
  h.stream_id = meta.stream_id;
  h.sequence = seq;
  h.tensor = ptp::TensorDesc{meta.name, tensor.dtype, tensor.shape, meta.layout,
                             static_cast<std::uint8_t>(tensor.vector_axis)};
  // Hands chunk k, built and timed, to the packet's frames and the wire.
  auto ship = [&](std::uint32_t k, Result<ptp::GatherList>& built,
                  std::shared_ptr<const void> owner, double encode_us) -> Status {
    // Polling between chunks may have ended the link (a peer that acknowledged too early). A bye
    // that follows the peer's ack of this very packet is no failure: that is checked later.
    if (m.state == Impl::State::kFailed) return m.failure_;
    if (!built) {
      // Nothing of this packet may go out half-made: take it back (it is the newest).
      if (k == 0 || mine().transmissions == 0) {
        m.unacked_bytes -= mine().bytes;
        m.unacked.pop_back();
        --m.next_seq;
        --m.counters.packets_sent;
        return built.status();
      }
      // Some chunks are already on the wire; the peer would wait for the rest forever.
      m.fail(built.status());
      return built.status();
    }
    std::vector<std::span<const std::byte>> referenced;
    for (std::size_t i = 1; i < built->pieces.size(); ++i) {
      // Section buffers (large) are referenced; prefix, header and padding are copied.
      if (built->pieces[i].size() >= 64) referenced.push_back(built->pieces[i]);
    }
    if (id == CodecId::kRaw) {
      if (keep_alive) {
        owner = keep_alive;
      } else {
        referenced.clear();  // copy the tensor's bytes: the caller's memory may change
      }
    }
    auto frame = detail::freeze(*built, referenced, std::move(owner));
    Impl::Pending& p_now = mine();
    p_now.bytes += frame->bytes;
    m.unacked_bytes += frame->bytes;
    p_now.encode_us += encode_us;
    p_now.frames.push_back(frame);
    detail::Channel* stream = m.stream_for(k);
    if (m.state == Impl::State::kUp && stream && p_now.transmissions > 0) {
      stream->send(frame);
      ++m.counters.frames_sent;
    }
    if (k + 1 == chunks) m.sent_upto = seq;
    if (chunks > 1) m.ctx->poll();  // let the socket take this chunk while we encode the next
    return m.state == Impl::State::kFailed ? m.failure_ : Status();
  };
  auto chunk_desc = [&](std::uint32_t k) {
    return ptp::ChunkDesc{k, chunks, k * per_chunk, std::min(per_chunk, vectors - k * per_chunk)};
  };

  const std::size_t threads = enc.writers.size();
  if (chunked && threads > 1) {
    // Chunks in rounds of `threads`, one writer each; a round goes out while the next is encoded
    // only in the kernel's time, so the wire sees chunks about `threads` times as often.
    std::vector<Result<ptp::GatherList>> built(threads, Result<ptp::GatherList>(ptp::GatherList{}));
    std::vector<std::shared_ptr<const void>> owners(threads);
    for (std::uint32_t first = 0; first < chunks; first += static_cast<std::uint32_t>(threads)) {
      const std::size_t n = std::min<std::size_t>(threads, chunks - first);
      const auto t0 = Clock::now();
      m.encode_pool->run(n, [&](std::size_t i) {
        const auto k = static_cast<std::uint32_t>(first + i);
        ptp::MessageHeader hk = h;
        hk.timestamp_ns = wall_clock_ns();
        built[i] = enc.writers[i].write_chunk(tensor, std::move(hk), meta.layout, chunk_desc(k));
        owners[i] = built[i] ? enc.writers[i].release_buffers() : nullptr;
      });
      const double round_us = micros_since(t0) / static_cast<double>(n);
      for (std::size_t i = 0; i < n; ++i) {
        AGP_RETURN_IF_ERROR(
            ship(static_cast<std::uint32_t>(first + i), built[i], std::move(owners[i]), round_us));
      }
    }
    return h.sequence;
  }
  for (std::uint32_t k = 0; k < chunks; ++k) {
    const auto t0 = Clock::now();
    h.timestamp_ns = wall_clock_ns();
    Result<ptp::GatherList> built =
        chunked ? enc.writers[0].write_chunk(tensor, h, meta.layout, chunk_desc(k))
                : enc.writers[0].write(tensor, h, meta.layout);
    std::shared_ptr<const void> owner = built ? enc.writers[0].release_buffers() : nullptr;
    AGP_RETURN_IF_ERROR(ship(k, built, std::move(owner), micros_since(t0)));
  }
  return h.sequence;
}

Result<Receipt> Link::wait_acked(std::uint64_t sequence, Millis timeout) {
  Impl& m = *impl_;
  if (sequence == 0 || sequence >= m.next_seq) {
    return make_error(ErrorCode::kInvalidArgument,
                      "packet " + std::to_string(sequence) + " was never posted");
  }
  AGP_RETURN_IF_ERROR(m.wait([&] { return m.acked_upto >= sequence; }, Clock::now() + timeout,
                             "waiting for the acknowledgement"));
  Receipt r;
  r.sequence = sequence;
  if (auto it = m.receipts.find(sequence); it != m.receipts.end()) {
    r = it->second;
    m.receipts.erase(it);
  }
  return r;
}

Result<Receipt> Link::send(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                           const PacketMeta& meta, Millis timeout) {
  const auto until = Clock::now() + timeout;
  // The caller waits for the acknowledgement, so raw bytes can be referenced, not copied.
  std::shared_ptr<const void> borrowed(tensor.data, [](const void*) {});
  auto seq = post(tensor, codec, meta, timeout, borrowed);
  if (!seq) return seq.status();
  const auto left = std::chrono::duration_cast<Millis>(until - Clock::now());
  auto r = wait_acked(*seq, std::max(left, Millis(0)));
  if (!r && r.status().code() == ErrorCode::kTimeout) {
    // The packet stays queued and may still be delivered; its memory must not be referenced.
    for (auto& p : impl_->unacked) {
      if (p.seq == *seq) {
        for (auto& f : p.frames) {
          if (f->keep_alive == borrowed) {
            auto copy = detail::freeze(ptp::GatherList{f->pieces, f->bytes}, {}, nullptr);
            f = copy;
          }
        }
      }
    }
  }
  return r;
}

Status Link::flush(Millis timeout) {
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  return m.wait([&] { return m.unacked.empty(); }, Clock::now() + timeout, "flush");
}

Result<ptp::MessageHeader> Link::next_packet(Millis timeout) {
  Impl& m = *impl_;
  AGP_RETURN_IF_ERROR(m.wait([&] { return m.due() || m.state == Impl::State::kClosed; },
                             Clock::now() + timeout, "waiting for a packet"));
  Impl::InPacket* p = m.due();
  if (!p) return make_error(ErrorCode::kConnectionClosed, "the peer closed the link");
  return *p->header;
}

Result<Delivery> Link::receive(codec::TensorView out, Millis timeout,
                               std::vector<ptp::Frame>* frames) {
  Impl& m = *impl_;
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (m.state == Impl::State::kFailed) return m.failure_;
    Impl::InPacket* due = m.due();
    if (!due) {
      if (m.state == Impl::State::kClosed || m.peer_said_bye) {
        return make_error(ErrorCode::kConnectionClosed, "the peer closed the link");
      }
      AGP_RETURN_IF_ERROR(
          m.wait([&] { return m.due() || m.state == Impl::State::kClosed; }, until, "receive"));
      continue;
    }
    Impl::InPacket& p = *due;
    if (out.shape != p.header->tensor->shape) {
      return make_error(ErrorCode::kInvalidArgument,
                        "the output buffer's shape differs from packet " + std::to_string(p.seq) +
                            "'s tensor (see next_packet())");
    }
    out.vector_axis = p.header->tensor->vector_axis;
    // The caller's buffer is checked first: its mistakes leave the packet queued.
    AGP_RETURN_IF_ERROR(out.validate());
    if (p.decoded_into != out.data) {  // a new buffer: start over
      p.to_decode.clear();
      for (auto& [index, c] : p.chunks) {
        c.decoded = false;
        p.to_decode.push_back(index);
      }
      p.decode_us = 0;
      p.decoded_into = out.data;
    }
    // Whatever arrived since the last pass, in any order (no rescan of decoded chunks: a packet
    // of many small chunks stays linear in their number).
    std::vector<std::uint32_t> batch;
    batch.swap(p.to_decode);
    for (std::uint32_t index : batch) {
      Impl::InChunk& c = p.chunks[index];
      if (c.decoded) continue;
      const auto t0 = Clock::now();
      Status s = m.reader.read(c.frame.header(), c.frame.body(), out);
      p.decode_us += micros_since(t0);
      c.decoded = true;
      if (!s) {
        // Verified, yet not decodable (NaN norms, a corrupt zstd frame, ...): never acknowledged.
        const Status why(s.code(), "packet " + std::to_string(p.seq) + " chunk " +
                                       std::to_string(index) + " cannot be decoded: " +
                                       s.message());
        m.refuse(why);
        return why;
      }
    }
    if (p.complete()) {
      Delivery d;
      d.header = *p.header;
      d.wire_bytes = p.wire_bytes;
      d.chunks = p.expected_chunks;
      d.decode_us = p.decode_us;
      if (frames) {
        frames->clear();
        for (auto& [index, c] : p.chunks) frames->push_back(std::move(c.frame));
      } else if (m.conn) {
        for (auto& [index, c] : p.chunks) m.conn->recycle(c.frame.release_body());
      }
      m.delivered = p.seq;
      m.inbox_bytes -= p.wire_bytes;
      m.inbox.erase(p.seq);
      ++m.counters.packets_delivered;
      if (m.opts.ack_on_receive) m.send_ack();
      m.pause_or_resume_reading();
      return d;
    }
    const std::uint64_t seq = p.seq;
    const std::size_t have = p.received();
    AGP_RETURN_IF_ERROR(m.wait(
        [&] {
          const Impl::InPacket* q = m.due();
          return !q || q->seq != seq || q->received() != have;
        },
        until, "receive"));
  }
}

Status Link::acknowledge() {
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  if (m.state == Impl::State::kUp) m.send_ack();  // a later reconnect's hello carries it anyway
  return {};
}

void Link::set_handlers(Handlers handlers) {
  impl_->handlers = std::move(handlers);
}

std::size_t Link::poll() {
  impl_->ctx->restart();
  return impl_->ctx->poll();
}

void Link::run_for(Millis duration) {
  Impl& m = *impl_;
  (void)m.wait([] { return false; }, Clock::now() + duration, "run");
}

Status Link::close(Millis timeout) {
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  if (m.state == Impl::State::kClosed) return {};
  const auto until = Clock::now() + timeout;
  Status drained = flush(timeout);
  if (m.state == Impl::State::kUp && !m.we_said_bye) {
    m.we_said_bye = true;
    m.state = Impl::State::kClosing;
    m.send_control(detail::base_header(m.opts, ptp::MessageKind::kBye));
    (void)m.wait([&] { return m.state == Impl::State::kClosed || !m.conn; }, until, "close");
  }
  if (auto c = m.release_connection()) c->close();
  m.close_extras();
  if (m.dialing) {
    m.dialing->cancel();
    m.dialing.reset();
  }
  m.we_said_bye = true;
  if (m.state != Impl::State::kFailed) m.state = Impl::State::kClosed;
  m.info.connected = false;
  m.tick.cancel();
  return drained;
}

Status Link::failure() const {
  return impl_->state == Impl::State::kFailed ? impl_->failure_ : Status();
}

bool Link::connected() const {
  return impl_->state == Impl::State::kUp;
}

Counters Link::counters() const {
  const Impl& m = *impl_;
  Counters c = m.counters;
  c.bytes_received = m.closed_bytes_in + (m.conn ? m.conn->bytes_read() : 0);
  c.bytes_sent = m.closed_bytes_out + (m.conn ? m.conn->bytes_written() : 0);
  c.unacked_packets = m.unacked.size();
  c.unacked_bytes = m.unacked_bytes;
  return c;
}

LinkInfo Link::info() const {
  return impl_->info;
}

}  // namespace agp::transport
