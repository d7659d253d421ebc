#include <algorithm>

#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"

namespace agp::transport {

using detail::Clock;

namespace {
// Connections still in their handshake. When a new one comes and this many wait, the oldest is
// dropped: memory stays bounded, and connections that sit idle cannot lock a legitimate peer out
// (it gets its handshake time unless 64 newer connections arrive within it).
constexpr std::size_t kMaxPendingHandshakes = 64;
// New sessions admitted but not yet taken by accept(); they read nothing until taken.
constexpr std::size_t kMaxWaitingSessions = 16;
}  // namespace

Server::Impl::Impl(std::shared_ptr<asio::io_context> context, LinkOptions o)
    : ctx(std::move(context)),
      opts(std::move(o)),
      acceptor(*ctx),
      tick(*ctx),
      control(opts.limits) {}

void Server::Impl::start_accept() {
  if (closed) return;
  auto socket = std::make_shared<detail::tcp::socket>(*ctx);
  std::weak_ptr<Impl> weak = weak_from_this();
  acceptor.async_accept(*socket, [weak, socket](const asio::error_code& ec) {
    if (auto self = weak.lock()) self->on_accepted(ec, socket);
  });
}

void Server::Impl::on_accepted(const asio::error_code& ec,
                               std::shared_ptr<detail::tcp::socket> socket) {
  if (closed || ec == asio::error::operation_aborted) return;
  if (!ec) {
    if (pending.size() >= kMaxPendingHandshakes) {
      ++counters.handshake_rejections;
      // Pending is in arrival order; a peer that has said hello is passed over while one that
      // has said nothing waits.
      auto victim = std::find_if(pending.begin(), pending.end(),
                                 [](const Pending& p) { return !p.hello; });
      if (victim == pending.end()) victim = pending.begin();
      auto dropped = victim->conn;
      pending.erase(victim);
      dropped->close();
    }
    detail::apply_socket_options(*socket, opts.socket);
    auto c =
        std::make_shared<detail::Connection>(std::move(*socket), detail::handshake_decoder(opts));
    pending.push_back({c, Clock::now() + opts.handshake_timeout, std::nullopt, {}});
    std::weak_ptr<Impl> weak = weak_from_this();
    std::weak_ptr<detail::Connection> wc = c;
    c->start({[weak, wc](ptp::Frame&& f) {
                auto self = weak.lock();
                auto conn = wc.lock();
                if (self && conn) self->on_pending_frame(conn, std::move(f));
              },
              [weak, wc](const Status& why) {
                auto self = weak.lock();
                auto conn = wc.lock();
                if (!self || !conn) return;
                // A bad frame during the handshake: say why, count it, forget the peer.
                if (why.code() < ErrorCode::kIoError) self->reject(conn, why);
                self->drop_pending(conn.get());
              }});
  }
  start_accept();  // errors such as too many open files must not stop the listener
}

void Server::Impl::drop_pending(const detail::Connection* c) {
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const Pending& p) { return p.conn.get() == c; }),
                pending.end());
}

void Server::Impl::reject(const std::shared_ptr<detail::Connection>& c, const Status& why) {
  const auto it =
      std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.conn == c; });
  if (it == pending.end()) return;  // already refused (telling the peer can fail it again)
  pending.erase(it);
  ++counters.handshake_rejections;
  if (why.code() == ErrorCode::kHeaderChecksumMismatch ||
      why.code() == ErrorCode::kSectionChecksumMismatch) {
    ++counters.checksum_failures;
  }
  c->fail_after_telling(why, detail::error_frame(control, opts, why));
}

void Server::Impl::on_pending_frame(const std::shared_ptr<detail::Connection>& c,
                                    ptp::Frame&& frame) {
  auto it =
      std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.conn == c; });
  if (it == pending.end()) return;
  const ptp::MessageHeader& h = frame.header();
  if (h.kind != ptp::MessageKind::kHello) {
    return reject(c,
                  make_error(ErrorCode::kHeaderInvalid,
                             "expected hello, got " + std::string(ptp::message_kind_name(h.kind))));
  }
  const ptp::HelloDesc& hello = *h.hello;
  if (!it->hello) {  // the client's first hello
    if (hello.flags & detail::kFlagProof) {
      return reject(c, make_error(ErrorCode::kHeaderInvalid, "a proof before the challenge"));
    }
    if (detail::common_protocol(hello) == 0) {
      return reject(
          c, make_error(ErrorCode::kProtocolVersionMismatch,
                        "the client speaks protocol " + std::to_string(hello.min_protocol) + ".." +
                            std::to_string(hello.max_protocol) + "; this server speaks 1"));
    }
    const bool client_has_key = (hello.flags & detail::kFlagKey) != 0;
    if (!opts.key.empty() && !client_has_key) {
      return reject(
          c, make_error(ErrorCode::kAuthenticationFailed, "this server requires a pre-shared key"));
    }
    if (opts.key.empty() && client_has_key) {
      return reject(c, make_error(ErrorCode::kAuthenticationFailed,
                                  "this server has no pre-shared key configured"));
    }
    if (hello.flags & detail::kFlagJoin) {  // another stream for a session that is up
      std::shared_ptr<Link::Impl> link;
      if (auto sit = sessions.find(hello.session_id); sit != sessions.end())
        link = sit->second.lock();
      const auto most = std::clamp<std::uint16_t>(opts.streams, 1, detail::kMaxStreams);
      if (!link || link->state != Link::Impl::State::kUp) {
        return reject(c, make_error(ErrorCode::kBadState, "no session of this id is up to join"));
      }
      if (hello.stream_index == 0 || hello.stream_index >= most) {
        return reject(
            c, make_error(ErrorCode::kCapabilityMismatch,
                          "stream " + std::to_string(hello.stream_index) + ": this server takes " +
                              std::to_string(most) + " streams per link"));
      }
    }
    if (!(hello.flags & detail::kFlagJoin) && ready.size() >= kMaxWaitingSessions) {
      std::shared_ptr<Link::Impl> known_link;
      if (auto s = sessions.find(hello.session_id); s != sessions.end()) known_link = s->second.lock();
      if (!known_link) {  // a returning session is re-attached whatever the queue holds
        return reject(c, make_error(ErrorCode::kBadState,
                                    "the server has " + std::to_string(ready.size()) +
                                        " sessions waiting to be accepted; try later"));
      }
    }
    auto nonce = detail::fresh_nonce();
    if (!nonce) return reject(c, nonce.status());
    it->nonce = std::move(nonce).value();
    it->hello = hello;
    ptp::MessageHeader r = detail::base_header(opts, ptp::MessageKind::kHelloReply);
    r.hello = detail::capabilities(opts);
    r.hello->nonce = it->nonce;
    r.hello->session_id = hello.session_id;
    // Resume positions. Reading them before the key is proven reveals two counters at most;
    // nothing is attached until then.
    std::shared_ptr<Link::Impl> known;
    if (auto s = sessions.find(hello.session_id); s != sessions.end()) known = s->second.lock();
    if (known && known->state != Link::Impl::State::kClosed &&
        known->state != Link::Impl::State::kFailed) {
      r.hello->delivered_sequence = known->delivered;
      r.hello->next_sequence =
          known->unacked.empty() ? known->next_seq : known->unacked.front().seq;
    } else {
      r.hello->flags |= detail::kFlagNewSession;
      r.hello->delivered_sequence = resume_point(hello);
      r.hello->next_sequence = 1;
    }
    if (!opts.key.empty()) {
      r.hello->auth_tag = detail::auth_tag(opts.key, detail::kServerProof, hello.nonce, it->nonce,
                                           hello.session_id, opts.fingerprint);
    }
    auto f = detail::control_frame(control, std::move(r));
    if (f) c->send(std::move(f), true);
    if (opts.key.empty()) {
      const ptp::HelloDesc first = *it->hello;
      drop_pending(c.get());
      admit(c, first);
    }
    return;
  }
  const bool join = (it->hello->flags & detail::kFlagJoin) != 0;
  // The client's proof.
  if (!(hello.flags & detail::kFlagProof) || hello.session_id != it->hello->session_id) {
    return reject(c, make_error(ErrorCode::kHeaderInvalid, "expected the client's proof"));
  }
  const auto expect = detail::auth_tag(opts.key, detail::kClientProof, it->nonce, it->hello->nonce,
                                       it->hello->session_id, opts.fingerprint);
  if (!detail::tags_equal(expect, hello.auth_tag)) {
    return reject(c, make_error(ErrorCode::kAuthenticationFailed,
                                "the client did not prove the pre-shared key"));
  }
  const ptp::HelloDesc first = *it->hello;
  drop_pending(c.get());
  if (join) {  // the proof is accepted: say so on this connection, then it carries data
    ptp::MessageHeader a = detail::base_header(opts, ptp::MessageKind::kAck);
    a.ack = ptp::AckDesc{0};
    if (auto f = detail::control_frame(control, std::move(a))) c->send(std::move(f), true);
  }
  admit(c, first);
}

void Server::Impl::admit(const std::shared_ptr<detail::Connection>& c,
                         const ptp::HelloDesc& hello) {
  if (hello.flags & detail::kFlagJoin) {
    std::shared_ptr<Link::Impl> link;
    if (auto s = sessions.find(hello.session_id); s != sessions.end()) link = s->second.lock();
    if (!link || link->state != Link::Impl::State::kUp) return c->close();
    return link->attach_extra(hello.stream_index, c);
  }
  std::shared_ptr<Link::Impl> link;
  if (auto s = sessions.find(hello.session_id); s != sessions.end()) link = s->second.lock();
  const bool known = link && link->state != Link::Impl::State::kClosed &&
                     link->state != Link::Impl::State::kFailed;
  if (!known) {
    if (ready.size() >= kMaxWaitingSessions) {
      // Not a permanent refusal: the client backs off and tries again.
      return c->fail_after_telling(
          make_error(ErrorCode::kBadState, "the server has " + std::to_string(ready.size()) +
                                               " sessions waiting to be accepted; try later"),
          detail::error_frame(control, opts,
                              make_error(ErrorCode::kBadState,
                                         "too many sessions waiting to be accepted; try later")));
    }
    link = std::make_shared<Link::Impl>(ctx, Link::Impl::Role::kServer, opts);
    link->accepted = false;
    link->server = shared_from_this();
    link->session_id = hello.session_id;
    sessions[hello.session_id] = link;
    ready.push_back(link);
  }
  link->attach(c);
  if (!opts.key.empty()) {  // confirm the proof; carries where the client's stream resumes
    ptp::MessageHeader a = detail::base_header(opts, ptp::MessageKind::kAck);
    a.ack = ptp::AckDesc{known ? link->delivered : resume_point(hello)};
    link->send_control(std::move(a));
  }
  // A new session adopts the client's numbering; a known one resumes where it was. (What the
  // client delivered of a stream this process never sent is not ours to count.)
  link->become_up(hello, known ? hello.delivered_sequence : 0,
                  known ? std::nullopt : std::optional<std::uint64_t>(resume_point(hello)));
}

std::uint64_t Server::Impl::resume_point(const ptp::HelloDesc& hello) const {
  std::uint64_t at = hello.next_sequence > 0 ? hello.next_sequence - 1 : 0;
  for (const auto& k : opts.known_sessions) {
    if (k.session_id == hello.session_id) at = std::max(at, k.delivered);
  }
  return at;
}

void Server::Impl::schedule_tick() {
  std::weak_ptr<Impl> weak = weak_from_this();
  tick.expires_after(Millis(50));
  tick.async_wait([weak](const asio::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->on_tick();
  });
}

void Server::Impl::on_tick() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<detail::Connection>> late;
  for (const Pending& p : pending) {
    if (now >= p.deadline) late.push_back(p.conn);
  }
  for (const auto& c : late) {
    reject(c, make_error(ErrorCode::kTimeout, "handshake not finished in time"));
  }
  for (auto it = sessions.begin(); it != sessions.end();) {
    it = it->second.expired() ? sessions.erase(it) : std::next(it);
  }
  if (!closed) schedule_tick();
}

// ---------------------------------------------------------------- Server API

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (!impl_) return;
  impl_->closed = true;
  asio::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->tick.cancel();
  for (auto& p : impl_->pending) p.conn->close();
  impl_->pending.clear();
  impl_->ready.clear();
}

Result<std::unique_ptr<Server>> Server::listen(const std::string& address, std::uint16_t port,
                                               const LinkOptions& options) {
  AGP_RETURN_IF_ERROR(validate(options));
  auto impl = std::make_shared<Impl>(std::make_shared<asio::io_context>(1), options);
  asio::error_code ec;
  const auto addr = asio::ip::make_address(address, ec);
  if (ec) return make_error(ErrorCode::kNetworkError, "'" + address + "' is not an IP address");
  const detail::tcp::endpoint where(addr, port);
  auto& a = impl->acceptor;
  a.open(where.protocol(), ec);
  if (!ec) a.set_option(detail::tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(where, ec);
  if (ec == asio::error::address_in_use) {
    return make_error(ErrorCode::kAddressInUse,
                      detail::endpoint_text(where) + " is already in use");
  }
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(ErrorCode::kNetworkError,
                      "listen on " + detail::endpoint_text(where) + ": " + ec.message());
  }
  impl->start_accept();
  impl->schedule_tick();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const {
  asio::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

Result<std::unique_ptr<Link>> Server::accept(Millis timeout) {
  Impl& m = *impl_;
  const bool got = detail::run_until(
      *m.ctx, [&] { return !m.ready.empty(); }, Clock::now() + timeout);
  if (!got) {
    return make_error(ErrorCode::kTimeout,
                      "accept: no peer within " + std::to_string(timeout.count()) + " ms");
  }
  std::shared_ptr<Link::Impl> link = std::move(m.ready.front());
  m.ready.pop_front();
  link->accepted = true;
  link->pause_or_resume_reading();
  return std::unique_ptr<Link>(new Link(std::move(link)));
}

bool Server::peer_waiting() const {
  return !impl_->ready.empty();
}

std::size_t Server::poll() {
  impl_->ctx->restart();
  return impl_->ctx->poll();
}

Counters Server::counters() const {
  return impl_->counters;
}

}  // namespace agp::transport
