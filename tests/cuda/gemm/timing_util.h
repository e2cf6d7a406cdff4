// Timing helpers of the gemm domain's GPU tests (C++17: shared by .cpp and .cu files).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/kernels/gemm/linear.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"

namespace dsv4::cuda::test {

constexpr int kRuns = 20;

// Median over kRuns of one CUDA-graph launch of launch(0..copies-1) back to back, divided by
// copies: the time of one launch without host launch gaps. Capturing also checks that the
// launchers are graph-safe.
template <typename Launch>
inline float median_ms(int copies, Launch launch) {
  cudaStream_t stream;
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < copies; ++i) launch(i, stream);
  DSV4_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  DSV4_CUDA_CHECK(cudaEventCreate(&start));
  DSV4_CUDA_CHECK(cudaEventCreate(&stop));
  DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));  // warm-up
  std::vector<float> ms;
  for (int run = 0; run < kRuns; ++run) {
    DSV4_CUDA_CHECK(cudaEventRecord(start, stream));
    DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    DSV4_CUDA_CHECK(cudaEventRecord(stop, stream));
    DSV4_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t / float(copies));
  }
  DSV4_CUDA_CHECK(cudaGetLastError());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

inline size_t l2_bytes() {
  int device = 0, l2 = 0;
  DSV4_CUDA_CHECK(cudaGetDevice(&device));
  DSV4_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  return size_t(l2);
}

// Copies of one device weight, packed into one allocation, enough to exceed 2x the L2.
struct Rotation {
  DeviceBuffer<uint8_t> values, scales;
  std::vector<DeviceLinearView> views;
};

inline Rotation rotate(const DeviceLinear& w) {
  const size_t vbytes = (w.values.size() + 255) / 256 * 256;
  const size_t sbytes = (w.scales.size() + 255) / 256 * 256;
  const int copies = int(std::max<size_t>(2, 2 * l2_bytes() / (vbytes + sbytes) + 2));
  Rotation r{DeviceBuffer<uint8_t>(vbytes * size_t(copies)),
             DeviceBuffer<uint8_t>(sbytes * size_t(copies)),
             {}};
  for (int i = 0; i < copies; ++i) {
    DeviceLinearView view = w.view();
    uint8_t* v = r.values.data() + vbytes * size_t(i);
    DSV4_CUDA_CHECK(cudaMemcpy(v, w.values.data(), w.values.size(), cudaMemcpyDeviceToDevice));
    view.values = v;
    if (sbytes > 0) {
      uint8_t* s = r.scales.data() + sbytes * size_t(i);
      DSV4_CUDA_CHECK(cudaMemcpy(s, w.scales.data(), w.scales.size(), cudaMemcpyDeviceToDevice));
      view.scales = s;
    }
    r.views.push_back(view);
  }
  return r;
}

}  // namespace dsv4::cuda::test
