#include "agp/codec/thread_pool.hpp"

#include <algorithm>

namespace agp::codec {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(std::size_t n, const std::function<void(std::size_t)>& task) {
  if (n == 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  task_ = &task;
  next_ = 0;
  total_ = n;
  finished_ = 0;
  ++generation_;
  wake_.notify_all();
  while (next_ < total_) {
    const std::size_t i = next_++;
    lock.unlock();
    task(i);
    lock.lock();
    ++finished_;
  }
  done_.wait(lock, [this] { return finished_ == total_; });
  task_ = nullptr;
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || (generation_ != seen && next_ < total_); });
    if (stop_) return;
    seen = generation_;
    while (task_ && next_ < total_) {
      const std::size_t i = next_++;
      const auto* task = task_;
      lock.unlock();
      (*task)(i);
      lock.lock();
      if (++finished_ == total_) done_.notify_all();
    }
  }
}

}  // namespace agp::codec
