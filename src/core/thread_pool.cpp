#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

namespace dsv4 {
namespace {
thread_local bool inside_parallel_region = false;
}  // namespace

ThreadPool::ThreadPool(size_t threads) {
  for (size_t i = 1; i < std::max<size_t>(threads, 1); ++i) {
    workers_.emplace_back([this, i] { worker_loop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::worker_loop(size_t index) {
  size_t seen = 0;
  for (;;) {
    std::unique_lock lock(mutex_);
    start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const size_t begin = index * chunk_, end = std::min(n_, begin + chunk_);
    lock.unlock();
    if (begin < end) run_range(begin, end);
    lock.lock();
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

void ThreadPool::run_range(size_t begin, size_t end) {
  inside_parallel_region = true;
  try {
    (*body_)(begin, end);
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
  inside_parallel_region = false;
}

void ThreadPool::parallel_for(size_t n, size_t grain,
                              const std::function<void(size_t, size_t)>& body) {
  if (n == 0) return;
  const size_t chunk = std::max(std::max<size_t>(grain, 1), (n + size() - 1) / size());
  // Nested loops run inline: the workers are already busy with the outer one.
  if (chunk >= n || workers_.empty() || inside_parallel_region) {
    body(0, n);
    return;
  }
  std::unique_lock lock(mutex_);
  body_ = &body;
  n_ = n;
  chunk_ = chunk;
  pending_ = workers_.size();
  error_ = nullptr;
  ++generation_;
  lock.unlock();
  start_cv_.notify_all();
  run_range(0, std::min(n, chunk));
  lock.lock();
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  body_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool([] {
    if (const char* env = std::getenv("DSV4_THREADS")) {
      const long value = std::strtol(env, nullptr, 10);
      if (value > 0) return size_t(value);
    }
    return size_t(std::max(1u, std::thread::hardware_concurrency()));
  }());
  return pool;
}

}  // namespace dsv4
