#include "agp/codec/thread_pool.hpp"

#include <algorithm>
#include <chrono>

namespace agp::codec {

ThreadPool::ThreadPool(int threads, int spin_micros) : spin_micros_(std::max(0, spin_micros)) {
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

void ThreadPool::drain(Batch& b) {
  while (true) {
    const std::size_t i = b.next.fetch_add(1, std::memory_order_acq_rel);
    if (i >= b.total) return;
    (*b.task)(i);
  }
}

void ThreadPool::run(std::size_t n, const std::function<void(std::size_t)>& task) {
  if (n == 0) return;
  Batch batch;
  batch.task = &task;
  batch.total = n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = &batch;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(batch);
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = nullptr;  // no worker can pick the batch up from now on
  }
  // Workers that hold it are finishing their last task; it takes about as long as ours did.
  while (batch.holders.load(std::memory_order_acquire) > 0) std::this_thread::yield();
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  while (true) {
    // Spin briefly for the next run, then sleep until notified.
    const auto spin_until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(spin_micros_);
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load() &&
           std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
    }
    Batch* batch = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      batch = current_;
      if (batch) batch->holders.fetch_add(1, std::memory_order_acq_rel);
    }
    if (batch) {
      drain(*batch);
      batch->holders.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace agp::codec
