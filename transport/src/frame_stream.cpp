#include "agp/transport/frame_stream.hpp"

#include <asio.hpp>
#include <optional>
#include <vector>

#include "asio_util.hpp"

namespace agp::transport {
namespace {

using asio::ip::tcp;
using detail::apply_socket_options;
using detail::endpoint_text;
using detail::from_asio;

// Runs the io_context until `done` or the deadline; on the deadline, cancels the socket's
// operations and lets them finish (their handlers see operation_aborted).
template <typename Socket>
void run_until(asio::io_context& ctx, Socket& socket, const bool& done,
               std::chrono::milliseconds timeout) {
  ctx.restart();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    ctx.run_one_until(deadline);
  }
  if (!done) {
    asio::error_code ignored;
    socket.cancel(ignored);
    ctx.restart();
    while (!done) ctx.run_one();
  }
}

}  // namespace

struct FrameStream::Impl {
  asio::io_context ctx;
  tcp::socket socket{ctx};
  ptp::FrameDecoder decoder;
  explicit Impl(ptp::DecoderOptions d) : decoder(std::move(d)) {}
};

FrameStream::FrameStream() = default;
FrameStream::~FrameStream() = default;
FrameStream::FrameStream(FrameStream&&) noexcept = default;
FrameStream& FrameStream::operator=(FrameStream&&) noexcept = default;

Result<FrameStream> FrameStream::connect(const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds timeout,
                                         const SocketOptions& options,
                                         ptp::DecoderOptions decoder) {
  FrameStream fs;
  fs.impl_ = std::make_unique<Impl>(std::move(decoder));
  Impl& m = *fs.impl_;
  asio::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return make_error(ErrorCode::kConnectFailed,
                      "'" + host + "' is not an IP address (" + ec.message() + ")");
  }
  const tcp::endpoint peer(address, port);
  m.socket.open(peer.protocol(), ec);
  if (!ec && !options.bind_address.empty()) {
    const auto local = asio::ip::make_address(options.bind_address, ec);
    if (!ec) m.socket.bind(tcp::endpoint(local, 0), ec);
  }
  if (ec)
    return make_error(ErrorCode::kConnectFailed, "cannot prepare the socket: " + ec.message());
  apply_socket_options(m.socket, options);
  bool done = false;
  asio::error_code result;
  m.socket.async_connect(peer, [&](const asio::error_code& e) {
    result = e;
    done = true;
  });
  run_until(m.ctx, m.socket, done, timeout);
  if (result == asio::error::operation_aborted) {
    return make_error(ErrorCode::kTimeout, "connect to " + endpoint_text(peer) +
                                               ": no answer within " +
                                               std::to_string(timeout.count()) + " ms");
  }
  if (result) {
    return make_error(ErrorCode::kConnectFailed,
                      "connect to " + endpoint_text(peer) + ": " + result.message());
  }
  return fs;
}

Status FrameStream::send(const ptp::GatherList& frame, std::chrono::milliseconds timeout) {
  if (!is_open()) return make_error(ErrorCode::kBadState, "send on a closed stream");
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(frame.pieces.size());
  for (const auto& p : frame.pieces) buffers.emplace_back(p.data(), p.size());
  bool done = false;
  asio::error_code result;
  asio::async_write(impl_->socket, buffers, [&](const asio::error_code& e, std::size_t) {
    result = e;
    done = true;
  });
  run_until(impl_->ctx, impl_->socket, done, timeout);
  if (result) return from_asio(result, "send");
  return {};
}

Result<ptp::Frame> FrameStream::receive(std::chrono::milliseconds timeout) {
  if (!is_open()) return make_error(ErrorCode::kBadState, "receive on a closed stream");
  Impl& m = *impl_;
  if (m.decoder.state() == ptp::FrameDecoder::State::kFailed) return m.decoder.error();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!m.decoder.frame_ready()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error(ErrorCode::kTimeout, "receive: deadline passed");
    const std::span<std::byte> dst = m.decoder.prepare();
    bool done = false;
    asio::error_code result;
    std::size_t got = 0;
    m.socket.async_read_some(asio::buffer(dst.data(), dst.size()),
                             [&](const asio::error_code& e, std::size_t n) {
                               result = e;
                               got = n;
                               done = true;
                             });
    run_until(m.ctx, m.socket, done, left);
    if (got > 0) AGP_RETURN_IF_ERROR(m.decoder.commit(got));
    if (result) return from_asio(result, "receive");
  }
  return m.decoder.take_frame();
}

bool FrameStream::is_open() const {
  return impl_ && impl_->socket.is_open();
}

void FrameStream::close() {
  if (!is_open()) return;
  asio::error_code ignored;
  impl_->socket.shutdown(tcp::socket::shutdown_both, ignored);
  impl_->socket.close(ignored);
}

std::string FrameStream::local_endpoint() const {
  asio::error_code ec;
  const auto e = impl_ ? impl_->socket.local_endpoint(ec) : tcp::endpoint();
  return ec ? std::string("?") : endpoint_text(e);
}

std::string FrameStream::remote_endpoint() const {
  asio::error_code ec;
  const auto e = impl_ ? impl_->socket.remote_endpoint(ec) : tcp::endpoint();
  return ec ? std::string("?") : endpoint_text(e);
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
  asio::error_code ec;
  const auto addr = asio::ip::make_address(address, ec);
  if (ec) return make_error(ErrorCode::kNetworkError, "'" + address + "' is not an IP address");
  const tcp::endpoint where(addr, port);
  auto& a = l.impl_->acceptor;
  a.open(where.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(where, ec);
  if (ec == asio::error::address_in_use) {
    return make_error(ErrorCode::kAddressInUse, endpoint_text(where) + " is already in use");
  }
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(ErrorCode::kNetworkError,
                      "listen on " + endpoint_text(where) + ": " + ec.message());
  return l;
}

std::uint16_t Listener::port() const {
  asio::error_code ec;
  return impl_ ? impl_->acceptor.local_endpoint(ec).port() : 0;
}

Result<FrameStream> Listener::accept(std::chrono::milliseconds timeout) {
  if (!impl_) return make_error(ErrorCode::kBadState, "accept on an unbound listener");
  FrameStream fs;
  fs.impl_ = std::make_unique<FrameStream::Impl>(impl_->decoder);
  bool done = false;
  asio::error_code result;
  tcp::socket peer(impl_->ctx);
  impl_->acceptor.async_accept(peer, [&](const asio::error_code& e) {
    result = e;
    done = true;
  });
  run_until(impl_->ctx, impl_->acceptor, done, timeout);
  if (result == asio::error::operation_aborted) {
    return make_error(ErrorCode::kTimeout,
                      "accept: no peer within " + std::to_string(timeout.count()) + " ms");
  }
  if (result) return make_error(ErrorCode::kNetworkError, "accept: " + result.message());
  // Move the connection onto the stream's own io_context.
  asio::error_code ec;
  const auto protocol = peer.local_endpoint(ec).protocol();
  const auto handle = peer.release(ec);
  if (!ec) fs.impl_->socket.assign(protocol, handle, ec);
  if (ec) return make_error(ErrorCode::kNetworkError, "accept: " + ec.message());
  apply_socket_options(fs.impl_->socket, impl_->options);
  return fs;
}

}  // namespace agp::transport
