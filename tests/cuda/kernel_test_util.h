// Helpers of the GPU-vs-CPU tests: fresh random inputs, bf16 packing, poisoned device
// buffers, relative errors and error statistics printed into the test log.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/formats.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"

namespace dsv4::cuda::test {

// ‖got − want‖ / ‖want‖ over all elements, in double.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    diff += d * d;
    norm += double(want[i]) * double(want[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// A device buffer filled with 0xff bytes (NaN as bf16 and fp32, -1 as int32).
template <typename T>
DeviceBuffer<T> poisoned(size_t count) {
  DeviceBuffer<T> buffer(count);
  if (count > 0) DSV4_CUDA_CHECK(cudaMemset(buffer.data(), 0xff, count * sizeof(T)));
  return buffer;
}

// A new seed each run, printed so that a failure can be replayed.
inline uint64_t fresh_seed(const char* what) {
  std::random_device device;
  const uint64_t seed = (uint64_t(device()) << 32) | device();
  std::printf("[seed] %s %llu\n", what, static_cast<unsigned long long>(seed));
  return seed;
}

// n normal values, rounded to bf16 when `bf16` (activations), times `scale`.
inline std::vector<float> random_normal(std::mt19937_64& rng, size_t n, float scale,
                                        bool bf16 = true) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = bf16 ? round_bf16(scale * normal(rng)) : scale * normal(rng);
  return out;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = float_to_bf16(x[i]);
  return out;
}

inline std::vector<float> from_bf16(const std::vector<uint16_t>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_float(x[i]);
  return out;
}

// Fills a device buffer with 0xff bytes: NaN for floats and bf16, -1 for integers.
template <typename T>
void poison(DeviceBuffer<T>& buffer) {
  DSV4_CUDA_CHECK(cudaMemset(buffer.data(), 0xff, buffer.size() * sizeof(T)));
}

struct Stats {
  size_t count = 0;
  size_t differ = 0;    // elements not bit-identical
  int64_t max_ulp = 0;  // in units of the compared format (bf16 or fp32)
  double relative = 0;  // ||gpu - cpu|| / ||cpu||
  bool finite = true;   // every GPU value finite
};

// Ordered integer of a float's bits, in ulps of bf16 (shift 16) or fp32 (shift 0).
inline int64_t ordered(float v, int shift) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  const int64_t magnitude = int64_t((bits & 0x7fffffffu) >> shift);
  return (bits & 0x80000000u) ? -magnitude : magnitude;
}

inline Stats compare(const std::vector<float>& gpu, const std::vector<float>& cpu, bool bf16) {
  Stats s;
  s.count = cpu.size();
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < cpu.size() && i < gpu.size(); ++i) {
    if (!std::isfinite(gpu[i])) s.finite = false;
    const double d = double(gpu[i]) - double(cpu[i]);
    diff2 += d * d;
    ref2 += double(cpu[i]) * double(cpu[i]);
    if (std::memcmp(&gpu[i], &cpu[i], 4) != 0) {
      ++s.differ;
      const int shift = bf16 ? 16 : 0;
      s.max_ulp = std::max(s.max_ulp, std::abs(ordered(gpu[i], shift) - ordered(cpu[i], shift)));
    }
  }
  if (gpu.size() != cpu.size()) s.finite = false;
  s.relative = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return s;
}

inline void report(const char* what, const Stats& s) {
  std::printf("[measure] %-44s n=%zu differ=%zu max_ulp=%lld rel=%.3g\n", what, s.count, s.differ,
              static_cast<long long>(s.max_ulp), s.relative);
}

// Median time in microseconds of `launch` (one or more kernel launches on the default stream)
// over `iterations` runs after a warm-up, measured with CUDA events. Inputs are not rotated,
// so small working sets come from L2.
template <typename Launch>
double median_us(Launch&& launch, int iterations = 20) {
  cudaEvent_t start, stop;
  DSV4_CUDA_CHECK(cudaEventCreate(&start));
  DSV4_CUDA_CHECK(cudaEventCreate(&stop));
  launch();
  std::vector<float> times;
  for (int i = 0; i < iterations; ++i) {
    DSV4_CUDA_CHECK(cudaEventRecord(start));
    launch();
    DSV4_CUDA_CHECK(cudaEventRecord(stop));
    DSV4_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DSV4_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  DSV4_CUDA_CHECK(cudaEventDestroy(start));
  DSV4_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return 1000.0 * double(times[times.size() / 2]);
}

inline void report_time(const char* what, double us) {
  std::printf("[timing] %-44s %9.2f us\n", what, us);
}

// The standard bound of these tests for bf16 outputs: every value finite, relative error
// <= 5e-3, at most `max_ulp` bf16 ulps apart, and at most `max_fraction` of them differing.
#define DSV4_EXPECT_CLOSE_BF16(stats, max_ulp_bound, max_fraction)                   \
  do {                                                                               \
    EXPECT_TRUE((stats).finite);                                                     \
    EXPECT_LE((stats).relative, 5e-3);                                               \
    EXPECT_LE((stats).max_ulp, (max_ulp_bound));                                     \
    EXPECT_LE(double((stats).differ), (max_fraction) * double((stats).count) + 0.5); \
  } while (0)

}  // namespace dsv4::cuda::test
