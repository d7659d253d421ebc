#include "tcp_backend.hpp"

#include "tcp_channel.hpp"

namespace agp::transport::detail {
namespace {

class TcpDial final : public Dial {
 public:
  explicit TcpDial(asio::io_context& ctx) : socket(std::make_shared<tcp::socket>(ctx)) {}
  void cancel() override {
    cancelled = true;
    asio::error_code ignored;
    socket->close(ignored);
  }
  std::shared_ptr<tcp::socket> socket;
  bool cancelled = false;
};

class TcpBackend final : public Backend {
 public:
  TcpBackend(asio::io_context& ctx, const LinkOptions& options)
      : ctx_(ctx), opts_(options), acceptor_(ctx) {}
  ~TcpBackend() override { stop_listening(); }

  Result<std::shared_ptr<Dial>> dial(const std::string& host, std::uint16_t port,
                                     ptp::DecoderOptions decoder, Dialed done) override {
    const auto peer = ip_endpoint(host, port, ErrorCode::kConnectFailed);
    if (!peer) return peer.status();
    auto attempt = std::make_shared<TcpDial>(ctx_);
    AGP_RETURN_IF_ERROR(open_socket(*attempt->socket, *peer, opts_.socket, opts_.bind_interface));
    const std::string where = endpoint_text(*peer);
    attempt->socket->async_connect(
        *peer, [attempt, where, decoder = std::move(decoder), done = std::move(done)](const asio::error_code& ec) {
          if (attempt->cancelled) return;
          if (ec) return done(make_error(ErrorCode::kConnectFailed, "connect to " + where + ": " + ec.message()));
          done(std::shared_ptr<Channel>(std::make_shared<TcpChannel>(std::move(*attempt->socket), decoder)));
        });
    return std::shared_ptr<Dial>(attempt);
  }

  Status listen(const std::string& address, std::uint16_t port, ptp::DecoderOptions decoder,
                Accepted on_accept) override {
    AGP_RETURN_IF_ERROR(listen_on(acceptor_, address, port));
    decoder_ = std::move(decoder);
    on_accept_ = std::move(on_accept);
    listening_ = std::make_shared<bool>(true);
    accept_next();
    return {};
  }

  std::uint16_t port() const override {
    asio::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

  void stop_listening() override {
    if (listening_) *listening_ = false;
    asio::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  void accept_next() {
    auto socket = std::make_shared<tcp::socket>(ctx_);
    std::weak_ptr<bool> alive = listening_;
    acceptor_.async_accept(*socket, [this, alive, socket](const asio::error_code& ec) {
      const auto on = alive.lock();
      if (!on || !*on || ec == asio::error::operation_aborted) return;
      if (!ec) {
        apply_socket_options(*socket, opts_.socket);
        on_accept_(std::make_shared<TcpChannel>(std::move(*socket), decoder_));
        if (!*on) return;  // the handler stopped the listener
      }
      accept_next();  // errors such as too many open files must not stop the listener
    });
  }

  asio::io_context& ctx_;
  const LinkOptions& opts_;
  tcp::acceptor acceptor_;
  ptp::DecoderOptions decoder_;
  Accepted on_accept_;
  std::shared_ptr<bool> listening_;  // false (or gone) once stopped: pending accepts do nothing
};

}  // namespace

std::unique_ptr<Backend> make_tcp_backend(asio::io_context& ctx, const LinkOptions& options) {
  return std::make_unique<TcpBackend>(ctx, options);
}

}  // namespace agp::transport::detail
