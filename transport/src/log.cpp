#include "log.hpp"

#include <atomic>
#include <memory>
#include <mutex>

namespace agp::transport {
namespace {

struct Sink {
  LogHandler handler;
  LogLevel min_level;
};

// Read on every record by any thread; replaced rarely.
std::mutex g_sink_mu;
std::shared_ptr<const Sink> g_sink;
std::atomic<int> g_min_level{1000};  // above every level: silent

}  // namespace

void set_log_handler(LogHandler handler, LogLevel min_level) {
  std::shared_ptr<const Sink> sink;
  if (handler) sink = std::make_shared<const Sink>(Sink{std::move(handler), min_level});
  std::lock_guard<std::mutex> hold(g_sink_mu);
  g_sink = std::move(sink);
  g_min_level = g_sink ? static_cast<int>(min_level) : 1000;
}

namespace detail {

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, std::string_view event, const std::string& message) {
  if (!log_enabled(level)) return;
  std::shared_ptr<const Sink> sink;
  {
    std::lock_guard<std::mutex> hold(g_sink_mu);
    sink = g_sink;
  }
  if (!sink || static_cast<int>(level) < static_cast<int>(sink->min_level)) return;
  sink->handler(LogRecord{level, event, message});
}

}  // namespace detail
}  // namespace agp::transport
