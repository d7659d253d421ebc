// A Link's extra streams (LinkOptions::streams > 1, internal): the client dials and joins them,
// both ends stripe chunks over the streams that are up.
#include <algorithm>

#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"

namespace agp::transport {

using detail::Clock;

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

}  // namespace agp::transport
