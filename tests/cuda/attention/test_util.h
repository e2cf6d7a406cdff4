// Helpers shared by the attention and indexer GPU tests (header-only; no kernel library
// symbols, so both test binaries can include it).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "core/formats.h"
#include "cuda/kernels/attention/kv_views.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"
#include "kernel_test_util.h"

namespace dsv4::cuda::test {

// Fresh inputs every run; the seed is printed so that a failure can be replayed.
inline std::mt19937_64 fresh_rng(const char* name) {
  std::random_device device;
  const uint64_t seed = (uint64_t(device()) << 32) ^ device();
  std::printf("[%s] seed %llu\n", name, static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

inline float normal(std::mt19937_64& rng, float stddev = 1.0f) {
  return std::normal_distribution<float>(0.0f, stddev)(rng);
}

// n values ~ N(0, stddev²), rounded to bf16.
inline std::vector<float> random_bf16_values(std::mt19937_64& rng, size_t n, float stddev = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = round_bf16(normal(rng, stddev));
  return v;
}

inline std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) bits[i] = float_to_bf16(v[i]);
  return bits;
}

inline bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// One chunk of consecutive positions of the sequence in `slot`.
struct Chunk {
  int32_t slot;
  int32_t start;
  int32_t count;
};

// A step's token batch, on the host and the device.
class DeviceBatch {
 public:
  explicit DeviceBatch(const std::vector<Chunk>& chunks) {
    for (const Chunk& c : chunks) {
      const auto begin = int32_t(slot.size());
      for (int32_t i = 0; i < c.count; ++i) {
        slot.push_back(c.slot);
        position.push_back(c.start + i);
        chunk_begin.push_back(begin);
        chunk_end.push_back(begin + c.count);
      }
    }
    d_slot_ = DeviceBuffer<int32_t>(slot);
    d_position_ = DeviceBuffer<int32_t>(position);
    d_begin_ = DeviceBuffer<int32_t>(chunk_begin);
    d_end_ = DeviceBuffer<int32_t>(chunk_end);
  }
  int32_t tokens() const { return int32_t(slot.size()); }
  TokenBatchView view() const {
    return {tokens(), d_slot_.data(), d_position_.data(), d_begin_.data(), d_end_.data()};
  }

  std::vector<int32_t> slot, position, chunk_begin, chunk_end;

 private:
  DeviceBuffer<int32_t> d_slot_, d_position_, d_begin_, d_end_;
};

// Median of the kernel times (ms) of `runs` launches of `launch(i)`, timed with events.
template <typename Launch>
float median_ms(int runs, const Launch& launch) {
  cudaEvent_t start, stop;
  DSV4_CUDA_CHECK(cudaEventCreate(&start));
  DSV4_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) launch(i);
  std::vector<float> times;
  for (int i = 0; i < runs; ++i) {
    DSV4_CUDA_CHECK(cudaEventRecord(start));
    launch(i);
    DSV4_CUDA_CHECK(cudaEventRecord(stop));
    DSV4_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    DSV4_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  DSV4_CUDA_CHECK(cudaEventDestroy(start));
  DSV4_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace dsv4::cuda::test
