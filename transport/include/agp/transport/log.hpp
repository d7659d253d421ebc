// What the transport says about itself: connects, handshake outcomes, refused peers, lost
// connections, reconnects and resumes, stalled streams. Silent until a handler is set; the
// handler is process-wide and called on the library's own log thread, one record at a time, in
// order. Records are queued (at most 1024): a slow handler never delays a link; when the queue is
// full, records are dropped and counted, and a log_records_dropped record says how many.
// docs/observability.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace agp::transport {

// Python's logging levels, so that records map one to one.
enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40 };

struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  // A stable name for the kind of record: connected, peer_accepted, peer_returned,
  // peer_refused, handshake_failed, connection_lost, reconnected, resumed, send_stalled,
  // receive_stalled, link_failed, aborted, close_unannounced, log_records_dropped.
  std::string_view event;
  std::string_view message;  // one line for people
};

using LogHandler = std::function<void(const LogRecord&)>;

// Sets (or, with an empty handler, removes) the handler for records at min_level and above. When
// it returns, the previous handler is not running and will not be called again.
void set_log_handler(LogHandler handler, LogLevel min_level = LogLevel::kInfo);

// Waits until every queued record has reached the handler (a tool before it exits); false when
// `timeout` passed first.
bool flush_log(std::chrono::milliseconds timeout);

// Records dropped so far because the handler could not keep up.
std::uint64_t log_records_dropped();

}  // namespace agp::transport
