// Kernel launches as programmatic dependent launches (on 9.x GPUs and later; ordinary launches
// elsewhere): the kernel's CTAs may be scheduled while the previous kernel in the stream is
// still finishing, so a step's chain of short kernels does not pay a full drain and launch at
// every boundary. Such a kernel must call wait_for_previous_kernel() (grid_dependency.cuh)
// before it touches global memory; the wait returns once the previous kernel has completed
// and its writes are visible, so the results are those of ordinary stream order.
// DSV4_SERIAL_LAUNCHES=1 in the environment turns the attribute off (ordinary launches), to
// measure what it buys or to rule it out when chasing a bug.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {

inline bool dependent_launches_enabled() {
  static const bool allowed = [] {
    const char* serial = std::getenv("DSV4_SERIAL_LAUNCHES");
    return !serial || std::strcmp(serial, "1") != 0;
  }();
  return allowed && current_device_traits().major >= 9;
}

template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = dependent_launches_enabled() ? 1 : 0;
  DSV4_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
}

// The same in thread block clusters of `cluster` CTAs (sm_90; each dimension divides grid's).
template <class... Params, class... Args>
void launch_dependent_clusters(void (*kernel)(Params...), dim3 grid, dim3 cluster, dim3 block,
                               size_t shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attributes[2]{};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = cluster.x;
  attributes[0].val.clusterDim.y = cluster.y;
  attributes[0].val.clusterDim.z = cluster.z;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = dependent_launches_enabled() ? 2 : 1;
  DSV4_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
}

}  // namespace dsv4::cuda
