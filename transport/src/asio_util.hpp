// Small helpers shared by the transport's Asio code (internal).
#pragma once

// A standard header first: Asio reads the library's configuration macros to choose its aligned
// allocator, and every file must choose alike (event_loop.hpp).
#include <cstddef>
// clang-format off
#include <asio.hpp>
// clang-format on
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

// host:port as an endpoint (IP addresses only: the transport resolves no names); `code` when
// `host` is not one.
Result<tcp::endpoint> ip_endpoint(const std::string& host, std::uint16_t port, ErrorCode code);

// Opens `socket` for connecting to `peer` from o.bind_address, else from the address of
// `bind_interface` (both empty: any), with the socket options. kConnectFailed saying why.
Status open_socket(tcp::socket& socket, const tcp::endpoint& peer, const SocketOptions& o,
                   const std::string& bind_interface);

// Opens `acceptor` on address:port (port 0 picks a free one), reusing the address, and listens.
// kAddressInUse, kNetworkError.
Status listen_on(tcp::acceptor& acceptor, const std::string& address, std::uint16_t port);

// Runs `ctx` until `done()` or the deadline, calling `between()` after each event (an event
// loop's yield_if_wanted). Returns done().
template <typename Done, typename Between>
bool run_until(asio::io_context& ctx, Done&& done, Clock::time_point deadline, Between&& between) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    ctx.restart();
    ctx.run_one_until(deadline);
    between();
  }
  return true;
}

template <typename Done>
bool run_until(asio::io_context& ctx, Done&& done, Clock::time_point deadline) {
  return run_until(ctx, std::forward<Done>(done), deadline, [] {});
}

}  // namespace agp::transport::detail
