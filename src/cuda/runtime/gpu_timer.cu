#include "cuda/runtime/gpu_timer.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void delay_kernel(uint64_t nanoseconds) {
  const uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < nanoseconds) {
  }
}

}  // namespace

EventPair::EventPair() {
  DSV4_CUDA_CHECK(cudaEventCreate(&start_));
  DSV4_CUDA_CHECK(cudaEventCreate(&stop_));
}

EventPair::~EventPair() {
  if (start_) cudaEventDestroy(start_);
  if (stop_) cudaEventDestroy(stop_);
}

EventPair::EventPair(EventPair&& other) noexcept
    : start_(std::exchange(other.start_, nullptr)), stop_(std::exchange(other.stop_, nullptr)) {}

EventPair& EventPair::operator=(EventPair&& other) noexcept {
  std::swap(start_, other.start_);
  std::swap(stop_, other.stop_);
  return *this;
}

void EventPair::start(cudaStream_t stream) {
  DSV4_CUDA_CHECK(cudaEventRecord(start_, stream));
}

void EventPair::stop(cudaStream_t stream) {
  DSV4_CUDA_CHECK(cudaEventRecord(stop_, stream));
}

double EventPair::milliseconds() const {
  DSV4_CUDA_CHECK(cudaEventSynchronize(stop_));
  float ms = 0.0f;
  DSV4_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
  return double(ms);
}

void enqueue_gpu_delay(cudaStream_t stream, double microseconds) {
  delay_kernel<<<1, 1, 0, stream>>>(uint64_t(std::max(0.0, microseconds) * 1000.0));
  DSV4_CUDA_CHECK(cudaGetLastError());
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

}  // namespace dsv4::cuda
