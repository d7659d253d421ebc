#include "asio_util.hpp"

#include "agp/transport/interfaces.hpp"

namespace agp::transport::detail {

Status from_asio(const asio::error_code& ec, const std::string& what) {
  if (ec == asio::error::operation_aborted) {
    return make_error(ErrorCode::kTimeout, what + ": deadline passed");
  }
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::connection_aborted) {
    return make_error(ErrorCode::kConnectionClosed,
                      what + ": the peer closed the connection (" + ec.message() + ")");
  }
  return make_error(ErrorCode::kNetworkError, what + ": " + ec.message());
}

void apply_socket_options(tcp::socket& s, const SocketOptions& o) {
  asio::error_code ignored;
  s.set_option(tcp::no_delay(o.no_delay), ignored);
  if (o.send_buffer_bytes > 0) {
    s.set_option(asio::socket_base::send_buffer_size(o.send_buffer_bytes), ignored);
  }
  if (o.receive_buffer_bytes > 0) {
    s.set_option(asio::socket_base::receive_buffer_size(o.receive_buffer_bytes), ignored);
  }
}

std::string endpoint_text(const tcp::endpoint& e) {
  std::string text;
  if (e.address().is_v6()) text += '[';
  text += e.address().to_string();
  if (e.address().is_v6()) text += ']';
  text += ':';
  text += std::to_string(e.port());
  return text;
}

Result<tcp::endpoint> ip_endpoint(const std::string& host, std::uint16_t port, ErrorCode code) {
  asio::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return make_error(code, "'" + host + "' is not an IP address");
  return tcp::endpoint(address, port);
}

Status open_socket(tcp::socket& socket, const tcp::endpoint& peer, const SocketOptions& o,
                   const std::string& bind_interface) {
  asio::error_code ec;
  socket.open(peer.protocol(), ec);
  if (ec) return make_error(ErrorCode::kConnectFailed, "socket: " + ec.message());
  std::string local = o.bind_address;
  if (local.empty() && !bind_interface.empty()) {
    auto a = address_of(bind_interface);
    if (!a) return a.status();
    local = *a;
  }
  if (!local.empty()) {
    const auto la = asio::ip::make_address(local, ec);
    if (!ec) socket.bind(tcp::endpoint(la, 0), ec);
    if (ec) {
      return make_error(ErrorCode::kConnectFailed, "cannot use local address " + local + ": " + ec.message());
    }
  }
  apply_socket_options(socket, o);
  return {};
}

Status listen_on(tcp::acceptor& acceptor, const std::string& address, std::uint16_t port) {
  const auto at = ip_endpoint(address, port, ErrorCode::kNetworkError);
  if (!at) return at.status();
  const tcp::endpoint where = *at;
  asio::error_code ec;
  acceptor.open(where.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(where, ec);
  if (ec == asio::error::address_in_use) {
    return make_error(ErrorCode::kAddressInUse, endpoint_text(where) + " is already in use");
  }
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(ErrorCode::kNetworkError, "listen on " + endpoint_text(where) + ": " + ec.message());
  return {};
}

}  // namespace agp::transport::detail
