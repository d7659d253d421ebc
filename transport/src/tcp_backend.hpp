// The TCP backend (internal): Asio sockets with the Link's socket options, local address or
// interface, and TcpChannel for each connection.
#pragma once

#include <memory>

#include "agp/transport/link.hpp"
#include "asio_util.hpp"
#include "backend.hpp"

namespace agp::transport::detail {

// `options` must outlive the backend (it is the owning Link's or Server's).
std::unique_ptr<Backend> make_tcp_backend(asio::io_context& ctx, const LinkOptions& options);

}  // namespace agp::transport::detail
