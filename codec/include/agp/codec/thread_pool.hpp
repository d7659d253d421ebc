// A small fixed-size thread pool the caller owns and passes to encode_all/decode_all.
//
// Packets take tens of microseconds to code, less than a sleeping thread takes to wake up, so idle
// workers spin for a short while (kSpinMicros by default) before they block. A pool that shares
// the cores with other busy threads should spin less: a spinning worker takes a core from them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace agp::codec {

class ThreadPool {
 public:
  static constexpr int kSpinMicros = 2000;

  // `threads` workers in total, the calling thread included (threads - 1 are started).
  explicit ThreadPool(int threads, int spin_micros = kSpinMicros);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs task(0) .. task(n - 1), the calling thread taking part; returns when all are done.
  // One run at a time per pool.
  void run(std::size_t n, const std::function<void(std::size_t)>& task);

 private:
  // One call of run(): lives on its caller's stack, which waits until no worker holds it.
  struct Batch {
    const std::function<void(std::size_t)>* task;
    std::size_t total;
    std::atomic<std::size_t> next{0};
    std::atomic<int> holders{0};
  };
  static void drain(Batch& b);  // takes task indices until none are left
  void worker_loop();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  Batch* current_ = nullptr;  // guarded by mu_
  std::atomic<bool> stop_{false};
  int spin_micros_;
};

}  // namespace agp::codec
