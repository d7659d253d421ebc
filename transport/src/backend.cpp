#include "backend.hpp"

#include "tcp_backend.hpp"
#ifdef AGP_HAVE_UCX
#include "ucx_backend.hpp"
#endif

namespace agp::transport::detail {

Result<std::unique_ptr<Backend>> make_backend(asio::io_context& ctx, const LinkOptions& options) {
  if (options.backend == TransportBackend::kUcx) {
#ifdef AGP_HAVE_UCX
    return make_ucx_backend(ctx, options);
#else
    return make_error(ErrorCode::kInvalidArgument, "this build has no UCX backend");
#endif
  }
  return make_tcp_backend(ctx, options);
}

}  // namespace agp::transport::detail
