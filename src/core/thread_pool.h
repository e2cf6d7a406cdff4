// A fixed pool of worker threads for data-parallel loops on the CPU backend.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv4 {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size() + 1; }

  // Calls body(begin, end) on disjoint ranges covering [0, n); the caller's thread takes a
  // share too. Ranges are contiguous and at least `grain` long (except the last). If a range
  // throws, the first exception is rethrown here once every range has returned.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& body);

  // The process-wide pool (DSV4_THREADS or the hardware concurrency).
  static ThreadPool& global();

 private:
  void worker_loop(size_t index);
  void run_range(size_t begin, size_t end);  // body_ on [begin, end); records an exception

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t n_ = 0, chunk_ = 0, generation_ = 0, pending_ = 0;
  std::exception_ptr error_;  // first exception thrown by a range of the current loop
  bool stop_ = false;
};

}  // namespace dsv4
