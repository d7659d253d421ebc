#include "common/metrics_server.hpp"

#include <array>
#include <asio.hpp>
#include <mutex>
#include <thread>

namespace agp::tools {

using asio::ip::tcp;

// One scrape at a time, each bounded: a request of at most 8 KiB, read and answered within 2 s.
struct MetricsServer::Impl {
  asio::io_context ctx{1};
  tcp::acceptor acceptor{ctx};
  std::mutex mu;
  std::string text = "# no metrics yet\n";
  std::thread thread;

  struct Scrape : std::enable_shared_from_this<Scrape> {
    Impl& owner;
    tcp::socket socket;
    asio::steady_timer deadline;
    std::string request;
    std::array<char, 1024> buf{};
    std::string response;
    Scrape(Impl& o, tcp::socket s) : owner(o), socket(std::move(s)), deadline(owner.ctx) {}

    void start() {
      deadline.expires_after(std::chrono::seconds(2));
      deadline.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        if (!ec) {
          asio::error_code ignored;
          self->socket.close(ignored);
        }
      });
      read();
    }
    void read() {
      socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](
                                                    const asio::error_code& ec, std::size_t n) {
        if (ec) {
          self->deadline.cancel();
          return;
        }
        self->request.append(self->buf.data(), n);
        // The end of the headers; a bare LF (netcat, printf) is accepted too.
        if (self->request.find("\r\n\r\n") != std::string::npos ||
            self->request.find("\n\n") != std::string::npos) {
          return self->answer();
        }
        if (self->request.size() > 8192)
          return self->reply("431 Request Header Fields Too Large", "");
        self->read();
      });
    }
    void answer() {
      std::string line = request.substr(0, request.find('\n'));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const bool get = line.rfind("GET ", 0) == 0;
      const bool head = line.rfind("HEAD ", 0) == 0;
      if (!get && !head) return reply("405 Method Not Allowed", "only GET /metrics\n");
      const auto path_end = line.find(' ', get ? 4 : 5);
      const std::string path = line.substr(get ? 4 : 5, path_end - (get ? 4 : 5));
      if (path != "/metrics" && path.rfind("/metrics?", 0) != 0) {
        return reply("404 Not Found", "see /metrics\n");
      }
      std::string body;
      {
        std::lock_guard<std::mutex> hold(owner.mu);
        body = owner.text;
      }
      reply("200 OK", head ? std::string() : body, head ? body.size() : std::string::npos);
    }
    void reply(const std::string& status, std::string body,
               std::size_t length = std::string::npos) {
      response = "HTTP/1.1 " + status +
                 "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
                 std::to_string(length == std::string::npos ? body.size() : length) +
                 "\r\nConnection: close\r\n\r\n" + body;
      asio::async_write(socket, asio::buffer(response),
                        [self = shared_from_this()](const asio::error_code&, std::size_t) {
                          asio::error_code ignored;
                          self->socket.shutdown(tcp::socket::shutdown_both, ignored);
                          self->socket.close(ignored);
                          self->deadline.cancel();
                        });
    }
  };

  void accept() {
    acceptor.async_accept([this](const asio::error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Scrape>(*this, std::move(s))->start();
      accept();
    });
  }
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            std::uint16_t port) {
  auto impl = std::make_unique<Impl>();
  asio::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "'" + address + "' is not an IP address");
  const tcp::endpoint at(ip, port);
  impl->acceptor.open(at.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(at, ec);
  if (!ec) impl->acceptor.listen(16, ec);
  if (ec) {
    return make_error(
        ec == asio::error::address_in_use ? ErrorCode::kAddressInUse : ErrorCode::kNetworkError,
        "metrics on " + address + ":" + std::to_string(port) + ": " + ec.message());
  }
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ctx.run(); });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  impl_->ctx.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t MetricsServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void MetricsServer::publish(std::string text) {
  std::lock_guard<std::mutex> hold(impl_->mu);
  impl_->text = std::move(text);
}

}  // namespace agp::tools
