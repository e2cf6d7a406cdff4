// The prefill expert kernel's work (fp4_expert_wgmma.cu; internal to the gemm domain): the
// units a launch splits into and the cursor with which each resident CTA walks its share.
#pragma once

#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "cuda/kernels/gemm/weight_stream_formats.cuh"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"

namespace dsv4::cuda::gemm_detail {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// The launch's units of work: each expert's tokens in tiles of kTokens (the last one possibly
// shorter), the tiles of all experts in expert order, and each tile against each block of kRows
// weight rows: unit u is row block u % row_blocks of tile u / row_blocks. A resident CTA takes
// units blockIdx.x, + gridDim.x, ... as one stream of stages (items, `steps` a unit), so that its
// rings run on from one unit into the next and a hot expert's tiles spread over every CTA.
struct Units {
  int row_blocks, steps, n_experts;
  const int* tile_starts;  // [n_experts + 1], shared memory: each expert's first tile; the total
  int count;
};

// Where a CTA is in its stream of items.
struct ItemCursor {
  int unit;           // the unit now (≥ Units::count once past the last)
  int sequence = -1;  // how many of the CTA's units came before it
  int expert = 0, row0 = 0, first_token = 0, here = 0;  // here: the tile's tokens
  int step = 0;

  // At the CTA's item `item`.
  __device__ ItemCursor(const StreamParams& p, const Units& units, int item)
      : unit(int(blockIdx.x) - int(gridDim.x)) {
    next_unit(p, units);
    advance(p, units, item);
  }
  __device__ bool done(const Units& units) const { return unit >= units.count; }
  __device__ void next_unit(const StreamParams& p, const Units& units) {
    ++sequence;
    unit += int(gridDim.x);
    if (done(units)) return;
    const int tile = unit / units.row_blocks;
    row0 = (unit - tile * units.row_blocks) * wgmma_gemm::kRows;
    // The last expert whose tiles start at or before `tile` (one without tokens starts where
    // the next one does): tile_starts[low] ≤ tile < tile_starts[high].
    int low = 0, high = units.n_experts;
    while (high - low > 1) {
      const int middle = (low + high) / 2;
      if (units.tile_starts[middle] <= tile) {
        low = middle;
      } else {
        high = middle;
      }
    }
    expert = low;
    first_token = p.expert_offsets[low] + (tile - units.tile_starts[low]) * wgmma_gemm::kTokens;
    here = min(p.expert_offsets[low + 1] - first_token, wgmma_gemm::kTokens);
  }
  __device__ void advance(const StreamParams& p, const Units& units, int by) {
    for (step += by; step >= units.steps && !done(units); step -= units.steps) next_unit(p, units);
  }
};

template <int kThreads>
using TokenTileScan = cub::BlockScan<int, kThreads>;

// Every CTA's list of where each expert's token tiles start (Units::tile_starts), through a
// block-wide scan over the experts (at most kMaxExperts) with `scratch` as its storage.
template <int kThreads, int kMaxExperts>
__device__ void list_token_tiles(const StreamParams& p, int n_experts, int* tile_starts,
                                 uint8_t* scratch) {
  using Scan = TokenTileScan<kThreads>;
  constexpr int kPerThread = (kMaxExperts + kThreads - 1) / kThreads;
  const int first = kPerThread * int(threadIdx.x);
  int tiles[kPerThread], starts[kPerThread], total = 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = first + i;
    const int count = e < n_experts ? p.expert_offsets[e + 1] - p.expert_offsets[e] : 0;
    tiles[i] = (count + wgmma_gemm::kTokens - 1) / wgmma_gemm::kTokens;
  }
  Scan(*reinterpret_cast<typename Scan::TempStorage*>(scratch)).ExclusiveSum(tiles, starts, total);
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    if (first + i < n_experts) tile_starts[first + i] = starts[i];
  }
  if (threadIdx.x == 0) tile_starts[n_experts] = total;
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail
