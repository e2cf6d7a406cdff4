// Thread block clusters (sm_90): the cluster barrier and loads from another CTA's shared memory
// (distributed shared memory). Inline PTX, compiled only where __CUDA_ARCH__ >= 900.
#pragma once

#include <cstdint>

#include "cuda/kernels/common/shared_memory.cuh"

namespace dsv4::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Every thread of every CTA in the cluster arrives and waits (all of them must call it, a warp's
// lanes together); shared memory writes before it are visible to the whole cluster after it.
__device__ __forceinline__ void cluster_sync() {
  asm volatile(
      "barrier.cluster.arrive.release.aligned;\n"
      "barrier.cluster.wait.acquire.aligned;\n" ::
          : "memory");
}

// The float at `local` (this CTA's shared memory) in CTA `rank` of the cluster.
__device__ __forceinline__ float load_cluster_shared_f32(const void* local, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n"
               : "=r"(remote)
               : "r"(shared_address(local)), "r"(rank));
  float value;
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(value) : "r"(remote) : "memory");
  return value;
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda
