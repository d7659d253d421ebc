#include "log.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace agp::transport {
namespace {

struct Sink {
  LogHandler handler;
  LogLevel min_level;
};

struct Queued {
  LogLevel level;
  std::string event;
  std::string message;
};

// Records go through a bounded queue to one dispatcher thread: a handler that is slow (a file on
// a busy disk, a logging system's lock) delays only the records, never the link that made them.
// A full queue drops records and counts them; the count goes out as a record of its own.
class Dispatcher {
 public:
  static Dispatcher& get() {
    static auto* d = new Dispatcher;  // never destroyed: records may come during exit
    return *d;
  }

  void set(std::shared_ptr<const Sink> sink) {
    std::unique_lock<std::mutex> hold(mu_);
    const bool inside = thread_.joinable() && std::this_thread::get_id() == thread_.get_id();
    // What the old handler was due still reaches it (briefly bounded: it may be stuck).
    if (!inside && sink_) {
      idle_cv_.wait_for(hold, std::chrono::seconds(1),
                        [&] { return queue_.empty() && dropped_ == 0 && !calling_; });
    }
    sink_ = std::move(sink);
    min_level_ = sink_ ? static_cast<int>(sink_->min_level) : 1000;
    if (!sink_) {
      queue_.clear();
      dropped_ = 0;
    }
    if (sink_ && !thread_.joinable()) thread_ = std::thread([this] { run(); });
    // Once set() returns, the old handler is not running and will not run again (unless this is
    // called from inside it, which must not wait for itself).
    if (!inside) {
      idle_cv_.wait(hold, [&] { return !calling_ || calling_sink_ == sink_.get(); });
    }
  }

  bool enabled(LogLevel level) const {
    return static_cast<int>(level) >= min_level_.load(std::memory_order_relaxed);
  }

  void push(LogLevel level, std::string_view event, const std::string& message) {
    {
      std::lock_guard<std::mutex> hold(mu_);
      if (!sink_ || static_cast<int>(level) < static_cast<int>(sink_->min_level)) return;
      if (queue_.size() >= kCapacity) {
        ++dropped_;
        ++dropped_total_;
        return;
      }
      queue_.push_back({level, std::string(event), message});
    }
    cv_.notify_one();
  }

  bool flush(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> hold(mu_);
    if (std::this_thread::get_id() == thread_.get_id()) return queue_.empty();
    return idle_cv_.wait_for(hold, timeout,
                             [&] { return queue_.empty() && dropped_ == 0 && !calling_; });
  }

  std::uint64_t dropped_total() {
    std::lock_guard<std::mutex> hold(mu_);
    return dropped_total_;
  }

 private:
  static constexpr std::size_t kCapacity = 1024;

  void run() {
    std::unique_lock<std::mutex> hold(mu_);
    for (;;) {
      cv_.wait(hold, [&] { return !queue_.empty() || dropped_ > 0; });
      Queued r;
      if (dropped_ > 0 && queue_.size() < kCapacity / 2) {  // once there is room to say so
        r = {LogLevel::kWarning, "log_records_dropped",
             std::to_string(dropped_) + " log records dropped: the log handler is slower than "
                                        "the records come (the link was not delayed)"};
        dropped_ = 0;
      } else {
        r = std::move(queue_.front());
        queue_.pop_front();
      }
      std::shared_ptr<const Sink> sink = sink_;
      if (!sink) continue;
      calling_ = true;
      calling_sink_ = sink.get();
      hold.unlock();
      sink->handler(LogRecord{r.level, r.event, r.message});
      sink.reset();
      hold.lock();
      calling_ = false;
      calling_sink_ = nullptr;
      idle_cv_.notify_all();  // flush() and set() wait for this
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;       // records queued
  std::condition_variable idle_cv_;  // a handler call ended
  std::deque<Queued> queue_;
  std::shared_ptr<const Sink> sink_;
  std::atomic<int> min_level_{1000};  // above every level: silent
  std::uint64_t dropped_ = 0;         // since the last drop record
  std::uint64_t dropped_total_ = 0;
  bool calling_ = false;
  const Sink* calling_sink_ = nullptr;
  std::thread thread_;
};

}  // namespace

void set_log_handler(LogHandler handler, LogLevel min_level) {
  std::shared_ptr<const Sink> sink;
  if (handler) sink = std::make_shared<const Sink>(Sink{std::move(handler), min_level});
  Dispatcher::get().set(std::move(sink));
}

bool flush_log(std::chrono::milliseconds timeout) {
  return Dispatcher::get().flush(timeout);
}

std::uint64_t log_records_dropped() {
  return Dispatcher::get().dropped_total();
}

namespace detail {

bool log_enabled(LogLevel level) {
  return Dispatcher::get().enabled(level);
}

void log(LogLevel level, std::string_view event, const std::string& message) {
  if (!log_enabled(level)) return;
  Dispatcher::get().push(level, event, message);
}

}  // namespace detail
}  // namespace agp::transport
