// The listing of the expert GEMMs' tiles (expert_tiles.h) as a block-wide device step, shared by
// plan_expert_tiles and moe_group's counting launch (which lists them from its own counts, so
// that a step spends no launch on it).
#pragma once

#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "cuda/kernels/gemm/expert_tiles.h"

namespace dsv4::cuda::expert_tiles_detail {

inline constexpr int32_t kTileTokens = 16, kNarrowMost = 4;

template <int kThreads>
using TileScan = cub::BlockScan<int32_t, kThreads>;

// Every thread of the block calls it: thread e lists expert e's tiles from its slot count n (0
// for threads past the experts); the entries come out in expert order, so the lists do not
// depend on scheduling. `storage` is reused: the caller syncs before touching it again.
template <int kThreads>
__device__ void list_expert_tiles(int e, int32_t n, const ExpertTiles& t,
                                  typename TileScan<kThreads>::TempStorage& storage) {
  const int32_t rest = n % kTileTokens;
  const int32_t narrow = rest >= 1 && rest <= kNarrowMost ? 1 : 0;
  const int32_t wide = n / kTileTokens + (rest > kNarrowMost ? 1 : 0);
  int32_t narrow_at = 0, wide_at = 0, narrow_total = 0, wide_total = 0;
  TileScan<kThreads>(storage).ExclusiveSum(narrow, narrow_at, narrow_total);
  __syncthreads();  // the scan storage is reused
  TileScan<kThreads>(storage).ExclusiveSum(wide, wide_at, wide_total);
  // Capacities too small for the slots the counts hold would drop tiles: fail loudly.
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

}  // namespace dsv4::cuda::expert_tiles_detail
