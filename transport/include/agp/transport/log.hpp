// What the transport says about itself: connects, handshake outcomes, refused peers, lost
// connections, reconnects and resumes, stalled streams. Silent until a handler is set; the
// handler is process-wide and called from inside library calls, on the thread that drives the
// link (it must not call into that link or its server). docs/observability.md.
#pragma once

#include <functional>
#include <string_view>

namespace agp::transport {

// Python's logging levels, so that records map one to one.
enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40 };

struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  // A stable name for the kind of record: connected, peer_accepted, peer_returned,
  // peer_refused, handshake_failed, connection_lost, reconnected, resumed, send_stalled,
  // receive_stalled, link_failed.
  std::string_view event;
  std::string_view message;  // one line for people
};

using LogHandler = std::function<void(const LogRecord&)>;

// Sets (or, with an empty handler, removes) the handler for records at min_level and above.
void set_log_handler(LogHandler handler, LogLevel min_level = LogLevel::kInfo);

}  // namespace agp::transport
