// Small helpers shared by the transport's Asio code (internal).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <string>

#include "agp/status.hpp"
#include "agp/transport/frame_stream.hpp"

namespace agp::transport::detail {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Maps a socket error to the library's codes: operation_aborted is a passed deadline, resets and
// end-of-file are a closed peer, the rest a network error.
Status from_asio(const asio::error_code& ec, const std::string& what);

// TCP_NODELAY and buffer sizes.
void apply_socket_options(tcp::socket& s, const SocketOptions& o);

std::string endpoint_text(const tcp::endpoint& e);

// Runs `ctx` until `done()` or the deadline. Returns done().
template <typename Done>
bool run_until(asio::io_context& ctx, Done&& done, Clock::time_point deadline) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    ctx.restart();
    ctx.run_one_until(deadline);
  }
  return true;
}

}  // namespace agp::transport::detail
