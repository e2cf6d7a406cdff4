// plan_expert_tiles: one thread per expert, block-wide exclusive scans for the list positions;
// the entries come out in expert order, so the lists do not depend on scheduling.
#include "cuda/kernels/gemm/expert_tiles.h"

#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int32_t kTileTokens = 16, kNarrowMost = 4;

__global__ void __launch_bounds__(kThreads)
    plan_expert_tiles_kernel(const int32_t* __restrict__ offsets, int n_experts, ExpertTiles t) {
  wait_for_previous_kernel();
  using Scan = cub::BlockScan<int32_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int e = int(threadIdx.x);
  const int32_t n = e < n_experts ? offsets[e + 1] - offsets[e] : 0;
  const int32_t rest = n % kTileTokens;
  const int32_t narrow = rest >= 1 && rest <= kNarrowMost ? 1 : 0;
  const int32_t wide = n / kTileTokens + (rest > kNarrowMost ? 1 : 0);
  int32_t narrow_at = 0, wide_at = 0, narrow_total = 0, wide_total = 0;
  Scan(scan_storage).ExclusiveSum(narrow, narrow_at, narrow_total);
  __syncthreads();  // the scan storage is reused
  Scan(scan_storage).ExclusiveSum(wide, wide_at, wide_total);
  // Capacities too small for the slots the offsets hold would drop tiles: fail loudly.
  if (narrow_total > t.narrow_capacity || wide_total > t.wide_capacity) __trap();
  const int32_t full = n / kTileTokens;
  for (int32_t i = 0; i < wide; ++i) {
    // Wide tiles: the full ones, then a last one of 5-15 tokens.
    t.wide[wide_at + i] = e * 65536 + i;
  }
  if (narrow) t.narrow[narrow_at] = e * 65536 + full;
  if (e == 0) {
    t.counts[0] = narrow_total;
    t.counts[1] = wide_total;
  }
}

}  // namespace

int64_t expert_narrow_tiles_capacity(int64_t n_experts, int64_t slots) {
  return std::max<int64_t>(1, std::min(n_experts, slots));
}

int64_t expert_wide_tiles_capacity(int64_t slots) {
  return std::max<int64_t>(1, slots / (kNarrowMost + 1));
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
