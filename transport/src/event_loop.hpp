// One io_context, the lock that gives it to one thread at a time, and a keeper thread that serves
// it while the application is away (internal).
//
// Real hosts compute between calls: a model step takes seconds. A link must keep its heartbeats
// and acknowledgements going meanwhile, or the peer declares it dead. The application's calls
// drive the loop themselves, as before (no hand-off, no latency added); when no call has come for
// a short grace period, the keeper takes the lock and runs the loop until the next call arrives,
// which wakes it and takes over. Everything that touches a Link's or Server's state does so under
// the lock: application calls (Call), and the keeper running handlers.
#pragma once

// A standard header before Asio's: Asio decides from the library's configuration macros whether
// to allocate with aligned_alloc, and a file that included it first decided otherwise than the
// rest (AddressSanitizer: alloc-dealloc-mismatch when the keeper freed what a channel allocated).
#include <cstddef>
// clang-format off
#include <asio.hpp>
// clang-format on
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace agp::transport::detail {

class EventLoop {
 public:
  // `grace`: how long the application may stay away before the keeper serves the loop.
  explicit EventLoop(std::chrono::milliseconds grace);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  asio::io_context& context() { return ctx_; }

  // An application call into a Link or Server: holds the lock for its scope (calls nest).
  class Call {
   public:
    explicit Call(EventLoop& loop);
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

   private:
    EventLoop& loop_;
  };

  // The public objects (a Link, a Server) each hold the loop while they live; the keeper runs
  // while anyone holds it. release() joins the keeper when the last holder goes: call it without
  // holding the lock, never from the keeper.
  void hold();
  void release();
  // A public object's last steps: releases the loop, then drops `impl` under the lock (a keeper
  // still serving the loop's other objects must never see it half destroyed).
  template <typename Impl>
  void release_and_drop(std::shared_ptr<Impl>& impl) {
    release();
    Call call(*this);
    impl.reset();
  }

  // Whether the calling thread is a keeper (its handlers must not call into the application).
  static bool on_keeper_thread();

  // For a thread that holds the lock and waits in the loop: when another thread wants the lock
  // (a metrics scrape, a sender beside a receiver), lets it have it, then takes it back. Waits
  // call this after each event, so no call holds the others off for its whole deadline.
  void yield_if_wanted();

 private:
  void keep();
  void serve();
  void acquire();  // takes the lock, waking whoever runs the loop with it

  asio::io_context ctx_{1};
  std::recursive_mutex mu_;
  std::mutex gate_mu_;  // holders_, stopping_ and the keeper's sleep
  std::condition_variable gate_cv_;
  std::atomic<int> callers_{0};
  std::atomic<std::uint64_t> calls_{0};  // calls begun, ever: a change means "the host is here"
  std::atomic<bool> engaged_{false};     // the keeper runs the loop (a call must wake it)
  std::atomic<bool> stopping_{false};
  std::atomic<int> waiting_{0};              // threads blocked on the lock
  std::atomic<std::uint64_t> handoffs_{0};   // times the lock changed hands
  std::atomic<std::thread::id> owner_{};     // who holds the lock (none: default id)
  int depth_ = 0;                            // the owner's nested calls
  int holders_ = 0;
  std::thread keeper_;
  std::chrono::milliseconds grace_;
};

// The keeper's grace for a link's timing: well inside the heartbeat interval and the dead-peer
// timeout, long enough that a host calling in a loop never meets the keeper.
std::chrono::milliseconds keeper_grace(std::chrono::milliseconds heartbeat_interval,
                                       std::chrono::milliseconds dead_peer_timeout);

}  // namespace agp::transport::detail
