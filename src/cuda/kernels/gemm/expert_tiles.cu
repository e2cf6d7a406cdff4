// plan_expert_tiles: one thread per expert, block-wide exclusive scans for the list positions
// (expert_tiles.cuh).
#include "cuda/kernels/gemm/expert_tiles.h"

#include <algorithm>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/gemm/expert_tiles.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads)
    plan_expert_tiles_kernel(const int32_t* offsets, int n_experts, ExpertTiles t) {
  wait_for_previous_kernel();
  __shared__ expert_tiles_detail::TileScan<kThreads>::TempStorage scan_storage;
  const int e = int(threadIdx.x);
  const int32_t n = e < n_experts ? offsets[e + 1] - offsets[e] : 0;
  expert_tiles_detail::list_expert_tiles<kThreads>(e, n, t, scan_storage);
}

}  // namespace

int64_t expert_narrow_tiles_capacity(int64_t n_experts, int64_t slots) {
  return std::max<int64_t>(1, std::min(n_experts, slots));
}

int64_t expert_wide_tiles_capacity(int64_t slots) {
  return std::max<int64_t>(1, slots / (expert_tiles_detail::kNarrowMost + 1));
}

void plan_expert_tiles(const int32_t* offsets, int64_t n_experts, const ExpertTiles& tiles,
                       cudaStream_t stream) {
  if (n_experts <= 0 || n_experts > kThreads) {
    fail("plan_expert_tiles: {} experts (at most {})", n_experts, kThreads);
  }
  launch_dependent(plan_expert_tiles_kernel, 1, kThreads, 0, stream, offsets, int(n_experts),
                   tiles);
}

}  // namespace dsv4::cuda
