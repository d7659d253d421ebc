// A small fixed-size thread pool the caller owns and passes to encode_all/decode_all.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace agp::codec {

class ThreadPool {
 public:
  // `threads` workers in total, the calling thread included (threads - 1 are started).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs task(0) .. task(n - 1), the calling thread taking part; returns when all are done.
  void run(std::size_t n, const std::function<void(std::size_t)>& task);

 private:
  void worker_loop();
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t next_ = 0, total_ = 0, finished_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace agp::codec
