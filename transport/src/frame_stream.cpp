// FrameStream and Listener: the blocking face of the TCP backend. A stream is a TcpChannel on
// its own io_context, run until the call's condition or deadline: the same reads, writes and
// socket set-up as a Link's connections, not a second TCP stack.
#include "agp/transport/frame_stream.hpp"

#include <asio.hpp>
#include <deque>
#include <optional>
#include <vector>

#include "asio_util.hpp"
#include "tcp_channel.hpp"

namespace agp::transport {

using asio::ip::tcp;
using detail::Clock;

struct FrameStream::Impl {
  asio::io_context ctx;
  std::shared_ptr<detail::TcpChannel> channel;
  std::deque<ptp::Frame> arrived;  // at most one: reading pauses while a frame waits
  std::optional<Status> failure;   // the channel's first failure (it is closed then)
  std::optional<Status> write_failure;  // a failed send; what arrived before can still be read

  // Starts the channel on `socket`; frames are read only while receive() waits for one.
  void attach(tcp::socket socket, ptp::DecoderOptions decoder) {
    channel = std::make_shared<detail::TcpChannel>(std::move(socket), std::move(decoder));
    channel->set_reading(false);
    channel->start({[this](ptp::Frame&& f) {
                      arrived.push_back(std::move(f));
                      channel->set_reading(false);
                    },
                    [this](const Status& why) { failure = why; },
                    [this](const Status& why) { write_failure = why; }});
  }
};

FrameStream::FrameStream() = default;
FrameStream::~FrameStream() {
  close();
}
FrameStream::FrameStream(FrameStream&&) noexcept = default;
FrameStream& FrameStream::operator=(FrameStream&&) noexcept = default;

Result<FrameStream> FrameStream::connect(const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds timeout,
                                         const SocketOptions& options,
                                         ptp::DecoderOptions decoder) {
  FrameStream fs;
  fs.impl_ = std::make_unique<Impl>();
  Impl& m = *fs.impl_;
  const auto peer = detail::ip_endpoint(host, port, ErrorCode::kConnectFailed);
  if (!peer) return peer.status();
  tcp::socket socket(m.ctx);
  AGP_RETURN_IF_ERROR(detail::open_socket(socket, *peer, options, ""));
  bool done = false;
  asio::error_code result;
  socket.async_connect(*peer, [&](const asio::error_code& e) {
    result = e;
    done = true;
  });
  if (!detail::run_until(m.ctx, [&] { return done; }, Clock::now() + timeout)) {
    asio::error_code ignored;
    socket.close(ignored);
    m.ctx.restart();
    while (!done) m.ctx.run_one();
    return make_error(ErrorCode::kTimeout, "connect to " + detail::endpoint_text(*peer) +
                                               ": no answer within " + std::to_string(timeout.count()) + " ms");
  }
  if (result) {
    return make_error(ErrorCode::kConnectFailed,
                      "connect to " + detail::endpoint_text(*peer) + ": " + result.message());
  }
  m.attach(std::move(socket), std::move(decoder));
  return fs;
}

Status FrameStream::send(const ptp::GatherList& frame, std::chrono::milliseconds timeout) {
  if (!is_open()) return make_error(ErrorCode::kBadState, "send on a closed stream");
  Impl& m = *impl_;
  if (m.write_failure) return *m.write_failure;
  // The pieces are the caller's, referenced (no copy): this call returns only once they are
  // written or the stream is closed.
  auto out = std::make_shared<detail::OutgoingFrame>();
  out->pieces = frame.pieces;
  for (const auto& p : frame.pieces) out->bytes += p.size();
  m.channel->send(out, false);
  const bool written = detail::run_until(
      m.ctx, [&] { return m.failure || m.write_failure || m.channel->queued_frames() == 0; },
      Clock::now() + timeout);
  if (m.write_failure) return *m.write_failure;
  if (m.failure) return *m.failure;
  if (!written) {
    close();  // a frame half on the wire: the stream cannot go on
    return make_error(ErrorCode::kTimeout, "send: deadline passed");
  }
  return {};
}

Result<ptp::Frame> FrameStream::receive(std::chrono::milliseconds timeout) {
  if (!impl_ || !impl_->channel) return make_error(ErrorCode::kBadState, "receive on a closed stream");
  Impl& m = *impl_;
  if (m.arrived.empty() && !m.failure) {
    if (!m.channel->is_open()) return make_error(ErrorCode::kBadState, "receive on a closed stream");
    m.channel->set_reading(true);
    detail::run_until(m.ctx, [&] { return !m.arrived.empty() || m.failure.has_value(); },
                      Clock::now() + timeout);
  }
  if (!m.arrived.empty()) {
    ptp::Frame f = std::move(m.arrived.front());
    m.arrived.pop_front();
    return f;
  }
  // A failed stream cannot be resynchronised: every later call reports the same failure.
  if (m.failure) return *m.failure;
  return make_error(ErrorCode::kTimeout, "receive: deadline passed");
}

bool FrameStream::is_open() const {
  return impl_ && impl_->channel && impl_->channel->is_open();
}

void FrameStream::close() {
  if (!is_open()) return;
  impl_->channel->close();
  // Let the cancelled operations finish on this stream's context before it goes.
  impl_->ctx.restart();
  impl_->ctx.poll();
}

std::string FrameStream::local_endpoint() const {
  return impl_ && impl_->channel ? impl_->channel->local_endpoint() : std::string("?");
}

std::string FrameStream::remote_endpoint() const {
  return impl_ && impl_->channel ? impl_->channel->remote_endpoint() : std::string("?");
}

struct Listener::Impl {
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx};
  SocketOptions options;
  ptp::DecoderOptions decoder;
};

Listener::Listener() = default;
Listener::~Listener() = default;
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;

Result<Listener> Listener::bind(const std::string& address, std::uint16_t port,
                                const SocketOptions& options, ptp::DecoderOptions decoder) {
  Listener l;
  l.impl_ = std::make_unique<Impl>();
  l.impl_->options = options;
  l.impl_->decoder = std::move(decoder);
  AGP_RETURN_IF_ERROR(detail::listen_on(l.impl_->acceptor, address, port));
  return l;
}

std::uint16_t Listener::port() const {
  asio::error_code ec;
  return impl_ ? impl_->acceptor.local_endpoint(ec).port() : 0;
}

Result<FrameStream> Listener::accept(std::chrono::milliseconds timeout) {
  if (!impl_) return make_error(ErrorCode::kBadState, "accept on an unbound listener");
  bool done = false;
  asio::error_code result;
  tcp::socket peer(impl_->ctx);
  impl_->acceptor.async_accept(peer, [&](const asio::error_code& e) {
    result = e;
    done = true;
  });
  if (!detail::run_until(impl_->ctx, [&] { return done; }, Clock::now() + timeout)) {
    asio::error_code ignored;
    impl_->acceptor.cancel(ignored);
    impl_->ctx.restart();
    while (!done) impl_->ctx.run_one();
    return make_error(ErrorCode::kTimeout, "accept: no peer within " + std::to_string(timeout.count()) + " ms");
  }
  if (result) return make_error(ErrorCode::kNetworkError, "accept: " + result.message());
  // The connection moves onto the stream's own io_context.
  FrameStream fs;
  fs.impl_ = std::make_unique<FrameStream::Impl>();
  asio::error_code ec;
  const auto protocol = peer.local_endpoint(ec).protocol();
  const auto handle = peer.release(ec);
  tcp::socket socket(fs.impl_->ctx);
  if (!ec) socket.assign(protocol, handle, ec);
  if (ec) return make_error(ErrorCode::kNetworkError, "accept: " + ec.message());
  detail::apply_socket_options(socket, impl_->options);
  fs.impl_->attach(std::move(socket), impl_->decoder);
  return fs;
}

}  // namespace agp::transport
