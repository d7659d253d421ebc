#include "event_loop.hpp"

#include <algorithm>

namespace agp::transport::detail {

namespace {
thread_local bool t_keeper = false;
}  // namespace

std::chrono::milliseconds keeper_grace(std::chrono::milliseconds heartbeat_interval,
                                       std::chrono::milliseconds dead_peer_timeout) {
  const auto g = std::min(heartbeat_interval, dead_peer_timeout) / 4;
  return std::clamp(g, std::chrono::milliseconds(2), std::chrono::milliseconds(50));
}

EventLoop::EventLoop(std::chrono::milliseconds grace) : grace_(grace) {}

EventLoop::~EventLoop() {
  // Every holder released (and joined) the keeper; a loop that was never held has none.
  if (keeper_.joinable()) keeper_.join();
}

bool EventLoop::on_keeper_thread() {
  return t_keeper;
}

EventLoop::Call::Call(EventLoop& loop) : loop_(loop) {
  // seq_cst on both sides: either the keeper sees this caller before it runs the loop, or this
  // caller sees the keeper engaged and wakes it (its run_one_for returns on the posted handler).
  loop_.callers_.fetch_add(1);
  loop_.calls_.fetch_add(1);
  if (loop_.owner_.load() == std::this_thread::get_id()) {  // a nested call
    loop_.mu_.lock();
    ++loop_.depth_;
    return;
  }
  loop_.acquire();
  loop_.depth_ = 1;
}

EventLoop::Call::~Call() {
  if (--loop_.depth_ == 0) loop_.owner_.store(std::thread::id());
  loop_.mu_.unlock();
  loop_.callers_.fetch_sub(1);
}

void EventLoop::acquire() {
  waiting_.fetch_add(1);
  // Whoever holds the lock may be blocked in the loop (the keeper, or a call waiting for its
  // deadline): a posted no-op makes it look up and hand over.
  if (engaged_.load() || owner_.load() != std::thread::id()) asio::post(ctx_, [] {});
  mu_.lock();
  waiting_.fetch_sub(1);
  handoffs_.fetch_add(1);
  owner_.store(std::this_thread::get_id());
}

void EventLoop::yield_if_wanted() {
  if (waiting_.load() == 0 || owner_.load() != std::this_thread::get_id()) return;
  const int depth = depth_;
  const std::uint64_t seen = handoffs_.load();
  depth_ = 0;
  owner_.store(std::thread::id());
  for (int i = 0; i < depth; ++i) mu_.unlock();
  // Let a waiter take it (the mutex is not fair: relocking at once could starve it), briefly.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
  while (handoffs_.load() == seen && waiting_.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  acquire();
  for (int i = 1; i < depth; ++i) mu_.lock();
  depth_ = depth;
}

void EventLoop::hold() {
  std::lock_guard<std::mutex> g(gate_mu_);
  if (holders_++ == 0 && !keeper_.joinable()) {
    stopping_ = false;
    keeper_ = std::thread([this] { keep(); });
  }
}

void EventLoop::release() {
  std::thread done;
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    if (--holders_ > 0) return;
    stopping_ = true;
    done = std::move(keeper_);
  }
  gate_cv_.notify_all();
  asio::post(ctx_, [] {});  // out of run_one_for
  if (done.joinable()) done.join();
}

void EventLoop::keep() {
  t_keeper = true;
  std::unique_lock<std::mutex> g(gate_mu_);
  while (!stopping_) {
    // Serve only after a grace period with no call begun and none under way: a host that calls
    // in a loop never has its lock taken; one that computes for longer is covered.
    const std::uint64_t seen = calls_.load();
    gate_cv_.wait_for(g, grace_, [&] { return stopping_.load(); });
    if (stopping_) break;
    if (callers_.load() > 0 || calls_.load() != seen) continue;
    g.unlock();
    serve();
    g.lock();
  }
}

void EventLoop::serve() {
  std::unique_lock<std::recursive_mutex> lock(mu_);
  engaged_.store(true);
  while (callers_.load() == 0 && !stopping_.load()) {
    ctx_.restart();
    ctx_.run_one_for(grace_);
  }
  engaged_.store(false);
}

}  // namespace agp::transport::detail
