#include "asio_util.hpp"

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

}  // namespace agp::transport::detail
