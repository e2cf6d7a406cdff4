// launch_dependent(): a kernel that starts while the previous one is still running sees all of
// its writes. The writer is slow on purpose; in a captured graph the reader does start early,
// and without its wait_for_previous_kernel() this test fails (seen: it reads the unwritten
// buffer).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/device_buffer.h"
#include "cuda/runtime/launch.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

constexpr int kValues = 4096;

// Spins for ~`nanoseconds`, then writes value + i to every element.
__global__ void slow_write_kernel(int32_t* data, int32_t value, uint32_t nanoseconds) {
  wait_for_previous_kernel();
  const uint64_t start = clock64();
  const uint64_t cycles = uint64_t(nanoseconds) * 2u;  // at ~2 GHz or less, at least as long
  while (clock64() - start < cycles) {
  }
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < kValues;
       i += int(gridDim.x * blockDim.x)) {
    data[i] = value + i;
  }
}

__global__ void copy_kernel(const int32_t* data, int32_t* out) {
  wait_for_previous_kernel();
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < kValues;
       i += int(gridDim.x * blockDim.x)) {
    out[i] = data[i];
  }
}

void expect_written(const std::vector<int32_t>& out, int32_t value) {
  for (int i = 0; i < kValues; ++i) ASSERT_EQ(out[size_t(i)], value + i) << "element " << i;
}

TEST(DependentLaunch, SeesEveryWriteOfTheKernelBeforeInAGraph) {
  DSV4_REQUIRE_GPU();
  DeviceBuffer<int32_t> data(std::vector<int32_t>(kValues, 0));
  DeviceBuffer<int32_t> out(std::vector<int32_t>(kValues, -1));
  cudaStream_t stream = nullptr;
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  launch_dependent(slow_write_kernel, 4, 256, 0, stream, data.data(), 7, 200000u);
  launch_dependent(copy_kernel, 4, 256, 0, stream, data.data(), out.data());
  DSV4_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
  expect_written(out.download(), 7);
  DSV4_CUDA_CHECK(cudaGraphExecDestroy(exec));
  DSV4_CUDA_CHECK(cudaGraphDestroy(graph));
  DSV4_CUDA_CHECK(cudaStreamDestroy(stream));
}

}  // namespace
}  // namespace dsv4::cuda
