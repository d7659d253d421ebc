// The UCX backend (internal; built when UCX is found, see docs/transport.md): each Link or Server
// has a UCP context and worker driven by the Link's io_context through the worker's event file
// descriptor. Connections are UCP endpoints made from socket addresses (UCX's connection
// manager), frames travel on the endpoint's ordered stream, and UCX picks the transport (TCP,
// shared memory, RDMA) unless LinkOptions::ucx_transports restricts it.
#pragma once

#include <memory>

#include "agp/transport/link.hpp"
#include "asio_util.hpp"
#include "backend.hpp"

namespace agp::transport::detail {

// `options` must outlive the backend (it is the owning Link's or Server's). kNetworkError when UCX
// cannot start (no usable transport, a bad ucx_transports list).
Result<std::unique_ptr<Backend>> make_ucx_backend(asio::io_context& ctx, const LinkOptions& options);

}  // namespace agp::transport::detail
