#include "cuda/runtime/hbm_bandwidth.h"

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"
#include "cuda/runtime/gpu_timer.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerSm = 8;  // 2048 threads: a full Hopper SM
constexpr int kUnroll = 4;       // 16-byte loads in flight per thread

// Streaming (evict-first) loads XOR-reduced; the result is stored only when it matches an
// impossible-to-predict value, which keeps every load alive at no store cost.
__global__ void __launch_bounds__(kThreads)
    read_kernel(const uint4* __restrict__ data, int64_t n, uint32_t* sink, uint32_t key) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  uint32_t acc = 0;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = __ldcs(data + i + u * stride);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n; i += stride) {
    const uint4 v = __ldcs(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == key) *sink = acc;
}

void check_args(size_t bytes, int runs, const char* what) {
  if (bytes < (size_t(1) << 20) || runs <= 0) {
    fail("{}: need at least 1 MiB and one run (got {} bytes, {} runs)", what, bytes, runs);
  }
}

// Median seconds of `runs` timed calls of enqueue(stream) after one warm-up call.
template <typename Enqueue>
double median_seconds(int runs, cudaStream_t stream, Enqueue enqueue) {
  enqueue(stream);
  std::vector<EventPair> events(static_cast<size_t>(runs));
  for (EventPair& e : events) {
    e.start(stream);
    enqueue(stream);
    e.stop(stream);
  }
  std::vector<double> ms;
  for (const EventPair& e : events) ms.push_back(e.milliseconds());
  return median(ms) * 1e-3;
}

}  // namespace

double measure_hbm_read_bandwidth(size_t bytes, int runs) {
  check_args(bytes, runs, "measure_hbm_read_bandwidth");
  bytes -= bytes % sizeof(uint4);
  DeviceBuffer<uint8_t> buffer(bytes);
  DeviceBuffer<uint32_t> sink(1);
  DSV4_CUDA_CHECK(cudaMemset(buffer.data(), 0x5a, bytes));
  int device = 0, sms = 0;
  DSV4_CUDA_CHECK(cudaGetDevice(&device));
  DSV4_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const auto* data = reinterpret_cast<const uint4*>(buffer.data());
  const auto n = int64_t(bytes / sizeof(uint4));
  const double seconds = median_seconds(runs, nullptr, [&](cudaStream_t stream) {
    read_kernel<<<unsigned(sms * kBlocksPerSm), kThreads, 0, stream>>>(data, n, sink.data(),
                                                                       0x9e3779b9u);
    DSV4_CUDA_CHECK(cudaGetLastError());
  });
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return double(bytes) / seconds;
}

double measure_d2d_copy_bandwidth(size_t bytes, int runs) {
  check_args(bytes, runs, "measure_d2d_copy_bandwidth");
  const size_t half = bytes / 2;
  DeviceBuffer<uint8_t> source(half), destination(half);
  DSV4_CUDA_CHECK(cudaMemset(source.data(), 0x5a, half));
  DSV4_CUDA_CHECK(cudaMemset(destination.data(), 0, half));
  const double seconds = median_seconds(runs, nullptr, [&](cudaStream_t stream) {
    DSV4_CUDA_CHECK(
        cudaMemcpyAsync(destination.data(), source.data(), half, cudaMemcpyDeviceToDevice, stream));
  });
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return 2.0 * double(half) / seconds;
}

}  // namespace dsv4::cuda
