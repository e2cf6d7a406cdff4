// Timing enqueued GPU work with CUDA events, for benchmarks: event pairs, a delay kernel that
// keeps a stream busy while the host enqueues the work to time (so the events measure GPU time,
// not host launch overhead), and the median the benchmark method reports.
#pragma once

#include <cuda_runtime.h>

#include <vector>

namespace dsv4::cuda {

// Two CUDA events around work on one stream.
class EventPair {
 public:
  EventPair();
  ~EventPair();
  EventPair(EventPair&& other) noexcept;
  EventPair& operator=(EventPair&& other) noexcept;
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;

  void start(cudaStream_t stream);
  void stop(cudaStream_t stream);
  // Waits for the stop event; milliseconds between the two events.
  double milliseconds() const;

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Enqueues one kernel that spins for about `microseconds` (by the GPU's global timer): work
// enqueued behind it while it spins then runs back to back.
void enqueue_gpu_delay(cudaStream_t stream, double microseconds);

// The median (mean of the middle two for an even count); 0 for no values.
double median(std::vector<double> values);

}  // namespace dsv4::cuda
