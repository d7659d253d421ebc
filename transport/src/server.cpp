#include <algorithm>

#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"
#include "log.hpp"

namespace agp::transport {

using detail::Clock;

namespace {
// Connections still in their handshake. When a new one comes and this many wait, the oldest is
// dropped: memory stays bounded, and connections that sit idle cannot lock a legitimate peer out
// (it gets its handshake time unless 64 newer connections arrive within it).
constexpr std::size_t kMaxPendingHandshakes = 64;
}  // namespace

Server::Impl::Impl(std::shared_ptr<detail::EventLoop> event_loop, LinkOptions o)
    : loop(std::move(event_loop)),
      ctx(loop, &loop->context()),
      opts(std::move(o)),
      tick(*ctx),
      control(opts.limits) {}

void Server::Impl::on_accepted(std::shared_ptr<detail::Channel> c) {
  if (closed) return c->close();
  if (pending.size() >= kMaxPendingHandshakes) {
    ++counters.handshake_rejections;
    // Pending is in arrival order; a peer that has said hello is passed over while one that
    // has said nothing waits.
    auto victim = std::find_if(pending.begin(), pending.end(),
                               [](const Pending& p) { return !p.handshake.greeted(); });
    if (victim == pending.end()) victim = pending.begin();
    auto dropped = victim->conn;
    pending.erase(victim);
    dropped->close();
  }
  auto nonce = detail::fresh_nonce();
  if (!nonce) return c->close();
  pending.push_back({c, Clock::now() + opts.handshake_timeout,
                     detail::ServerHandshake(opts, std::move(nonce).value())});
  std::weak_ptr<Impl> weak = weak_from_this();
  std::weak_ptr<detail::Channel> wc = c;
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
            },
            nullptr});
}

void Server::Impl::drop_pending(const detail::Channel* c) {
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const Pending& p) { return p.conn.get() == c; }),
                pending.end());
}

void Server::Impl::reject(const std::shared_ptr<detail::Channel>& c, const Status& why) {
  const auto it =
      std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.conn == c; });
  if (it == pending.end()) return;  // already refused (telling the peer can fail it again)
  pending.erase(it);
  ++counters.handshake_rejections;
  if (why.code() == ErrorCode::kHeaderChecksumMismatch ||
      why.code() == ErrorCode::kSectionChecksumMismatch) {
    ++counters.checksum_failures;
  }
  detail::log(LogLevel::kWarning, "peer_refused",
              "refused the peer at " + c->remote_endpoint() + ": " + why.to_string());
  c->fail_after_telling(why, detail::error_frame(control, opts, why));
}

void Server::Impl::on_pending_frame(const std::shared_ptr<detail::Channel>& c,
                                    ptp::Frame&& frame) {
  auto it =
      std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.conn == c; });
  if (it == pending.end()) return;
  detail::ServerHandshake::Step step = it->handshake.on_header(frame.header(), *this);
  if (!step.failure) return reject(c, step.failure);
  if (step.send) {
    if (auto f = detail::control_frame(control, std::move(*step.send))) c->send(std::move(f), true);
  }
  if (!step.admitted) return;
  drop_pending(c.get());
  admit(c, step);
}

std::optional<detail::SessionDirectory::Known> Server::Impl::find(std::uint64_t session_id) const {
  const auto s = sessions.find(session_id);
  if (s == sessions.end()) return std::nullopt;
  const std::shared_ptr<Link::Impl> link = s->second.lock();
  if (!link || link->state == Link::Impl::State::kClosed || link->state == Link::Impl::State::kFailed) {
    return std::nullopt;
  }
  Known k;
  k.up = link->state == Link::Impl::State::kUp;
  k.delivered = link->delivered;
  k.next_sequence = link->unacked.empty() ? link->next_seq : link->unacked.front().seq;
  return k;
}

void Server::Impl::admit(const std::shared_ptr<detail::Channel>& c,
                         const detail::ServerHandshake::Step& step) {
  std::shared_ptr<Link::Impl> link;
  if (auto s = sessions.find(step.hello.session_id); s != sessions.end()) link = s->second.lock();
  if (step.join) return link->attach_extra(step.hello.stream_index, c);  // found up just now
  if (!step.known) {
    link = std::make_shared<Link::Impl>(loop, Link::Impl::Role::kServer, opts);
    link->accepted = false;
    link->server = shared_from_this();
    link->session_id = step.hello.session_id;
    sessions[step.hello.session_id] = link;
    ready.push_back(link);
  }
  if (detail::log_enabled(LogLevel::kInfo)) {
    detail::log(LogLevel::kInfo, step.known ? "peer_returned" : "peer_accepted",
                std::string(step.known ? "session " : "new session ") +
                    std::to_string(step.hello.session_id) + " from " + c->remote_endpoint() +
                    (step.hello.peer_name.empty() ? "" : " (" + step.hello.peer_name + ")"));
  }
  link->attach(c);
  link->become_up(step.hello, step.peer_delivered, step.restart_at);
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
  std::vector<std::shared_ptr<detail::Channel>> late;
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

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->loop->hold();
}

Server::~Server() {
  if (!impl_) return;
  const std::shared_ptr<detail::EventLoop> loop = impl_->loop;
  {
    detail::EventLoop::Call call(*loop);
    impl_->closed = true;
    impl_->backend->stop_listening();
    impl_->tick.cancel();
    for (auto& p : impl_->pending) p.conn->close();
    impl_->pending.clear();
    impl_->ready.clear();
  }
  loop->release_and_drop(impl_);  // accepted Links, if any, keep the keeper going
}

Result<std::unique_ptr<Server>> Server::listen(const std::string& address, std::uint16_t port,
                                               const LinkOptions& options) {
  AGP_RETURN_IF_ERROR(validate(options));
  auto impl = std::make_shared<Impl>(
      std::make_shared<detail::EventLoop>(
          detail::keeper_grace(options.heartbeat_interval, options.dead_peer_timeout)),
      options);
  auto backend = detail::make_backend(*impl->ctx, impl->opts);
  if (!backend) return backend.status();
  impl->backend = std::move(backend).value();
  std::weak_ptr<Impl> weak = impl;
  AGP_RETURN_IF_ERROR(impl->backend->listen(address, port, detail::handshake_decoder(options),
                                            [weak](std::shared_ptr<detail::Channel> c) {
                                              if (auto self = weak.lock()) self->on_accepted(std::move(c));
                                            }));
  impl->schedule_tick();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const {  // fixed once listening: no lock
  return impl_->backend->port();
}

Result<std::unique_ptr<Link>> Server::accept(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  // The first admitted peer whose handshake reply has left (a peer that does not read it does
  // not hold up the others).
  auto next = m.ready.end();
  const bool got = detail::run_until(
      *m.ctx,
      [&] {
        next = std::find_if(m.ready.begin(), m.ready.end(),
                            [](const std::shared_ptr<Link::Impl>& l) { return l->handed_over(); });
        return next != m.ready.end();
      },
      Clock::now() + timeout, [&] { m.loop->yield_if_wanted(); });
  if (!got) {
    return make_error(ErrorCode::kTimeout,
                      "accept: no peer within " + std::to_string(timeout.count()) + " ms");
  }
  std::shared_ptr<Link::Impl> link = std::move(*next);
  m.ready.erase(next);
  link->accepted = true;
  link->pause_or_resume_reading();
  return std::unique_ptr<Link>(new Link(std::move(link)));
}

bool Server::peer_waiting() const {
  detail::EventLoop::Call call(*impl_->loop);
  return std::any_of(impl_->ready.begin(), impl_->ready.end(),
                     [](const std::shared_ptr<Link::Impl>& l) { return l->handed_over(); });
}

std::size_t Server::poll() {
  detail::EventLoop::Call call(*impl_->loop);
  impl_->ctx->restart();
  return impl_->ctx->poll();
}

std::size_t Server::wait_event(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  impl_->ctx->restart();
  return impl_->ctx->run_one_for(timeout);
}

void Server::wake() {
  asio::post(*impl_->ctx, [] {});
}

Counters Server::counters() const {
  detail::EventLoop::Call call(*impl_->loop);
  return impl_->counters;
}

}  // namespace agp::transport
