#include <string>

#include "agp/ptp/validate.hpp"
#include "agp/transport/link.hpp"
#include "handshake.hpp"

namespace agp::transport {
namespace {

Status bad(const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "LinkOptions: " + what);
}

Status check_text(const std::string& s, const char* name, std::uint32_t max_bytes) {
  if (s.size() > max_bytes) {
    return bad(std::string(name) + " is " + std::to_string(s.size()) +
               " bytes; a hello carries at most " + std::to_string(max_bytes));
  }
  if (ptp::invalid_utf8_offset(s) != std::string::npos) {
    return bad(std::string(name) + " is not valid UTF-8");
  }
  return {};
}

}  // namespace

bool ucx_available() {
#ifdef AGP_HAVE_UCX
  return true;
#else
  return false;
#endif
}

Status validate(const LinkOptions& o) {
  if (o.backend == TransportBackend::kUcx && !ucx_available()) {
    return bad("backend ucx: this build has no UCX backend (UCX was not found when it was built: "
               "install it, e.g. Debian's libucx-dev, and rebuild; Homebrew has no UCX)");
  }
  if (o.backend != TransportBackend::kTcp && o.backend != TransportBackend::kUcx) {
    return bad("backend is neither tcp nor ucx");
  }
  AGP_RETURN_IF_ERROR(check_text(o.model_id, "model_id", o.limits.max_string_bytes));
  AGP_RETURN_IF_ERROR(check_text(o.peer_name, "peer_name", o.limits.max_string_bytes));
  if (o.streams < 1 || o.streams > detail::kMaxStreams) {
    return bad("streams must be 1.." + std::to_string(detail::kMaxStreams) + ", got " +
               std::to_string(o.streams));
  }
  if (o.encode_threads < 1 || o.encode_threads > detail::kMaxEncodeThreads) {
    return bad("encode_threads must be 1.." + std::to_string(detail::kMaxEncodeThreads) +
               ", got " + std::to_string(o.encode_threads));
  }
  if (o.decode_threads < 1 || o.decode_threads > detail::kMaxDecodeThreads) {
    return bad("decode_threads must be 1.." + std::to_string(detail::kMaxDecodeThreads) +
               ", got " + std::to_string(o.decode_threads));
  }
  if (!o.key.empty() && o.key.size() < 16) {
    return bad("a pre-shared key must be at least 16 bytes (got " + std::to_string(o.key.size()) +
               "); leave it empty for no authentication");
  }
  if (o.window_packets == 0 || o.window_bytes == 0 || o.receive_buffer_bytes == 0) {
    return bad("window_packets, window_bytes and receive_buffer_bytes must be above 0");
  }
  const Millis times[] = {o.connect_timeout,   o.handshake_timeout, o.heartbeat_interval,
                          o.dead_peer_timeout, o.reconnect_max,     o.reconnect_give_up,
                          o.stall_warning};
  for (Millis t : times) {
    if (t <= Millis(0)) {
      return bad("timeouts, intervals and the reconnect limits must be above 0 ms");
    }
  }
  if (o.reconnect_initial < Millis(0)) return bad("reconnect_initial must not be negative");
  return {};
}

}  // namespace agp::transport
