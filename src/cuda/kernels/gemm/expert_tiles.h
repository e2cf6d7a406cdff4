// The work list of the routed-expert GEMM: every expert's tokens in tiles of 16 (the last one
// possibly shorter), listed on the device from moe_group's offsets so that the GEMM launches
// CTAs for the tiles that exist, not for every (expert, tile) pair a step could have. Tiles of
// 1-4 tokens ("narrow") and of 5-16 ("wide") are listed apart: they run as separate launches.
// An entry is expert · 65536 + tile (tile t covers the expert's tokens [16t, 16t + 16)).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace dsv4::cuda {

struct ExpertTiles {
  int32_t* narrow = nullptr;  // [narrow_capacity]
  int32_t* wide = nullptr;    // [wide_capacity]
  int32_t* counts = nullptr;  // [2]: narrow, wide
  int64_t narrow_capacity = 0, wide_capacity = 0;
};

// CTAs per row group of the expert GEMMs' launches over a list; each loops over the list.
inline constexpr int64_t kExpertTileSlots = 128;

// From this many tokens a step (the most one expert can get), MXFP4 experts on sm_90 skip the
// tile lists: the FP8 warpgroup-MMA kernel (fp4_expert_wgmma.cu) walks each expert's tokens.
// It converts every expert's weights whatever the tokens, so its time hardly grows with them
// while the tile-list kernel's does. Measured on an H200 (one MoE layer, both kernels forced,
// bench/RESULTS.md, fourteenth session, weights in the kMmaTiles layout): they cross between 896
// and 1024 tokens for Flash's 256 experts (1024 to 1152 skewed) and between 1280 and 1536 for
// Pro's 384; 960 tokens, or 3.75 per expert where that is more, takes the faster kernel at every
// size measured (768 to 2048 tokens, uniform and skewed) but Flash skewed at 1024 (0.7% slower).
inline int64_t expert_wgmma_min_tokens(int64_t n_experts) {
  return std::max<int64_t>(960, 15 * n_experts / 4);
}

// From this many tokens a step, MXFP4 experts below expert_wgmma_min_tokens on sm_90 run on whole
// bands (fp4_expert_stream_wgmma.cu: a warpgroup streams all of a 64-row band's inputs; the same
// sums as at fewer tokens). Measured on an H200 (bench/RESULTS.md, twenty-fifth session): 1-6%
// faster from 8 tokens, 5-7% slower at 2-3, where their CTAs are too few to fill the GPU.
inline constexpr int64_t kExpertWholeBandMinTokens = 8;

// The most tiles of each kind `slots` (token, expert) pairs over n_experts experts can make: at
// most one narrow tile per expert and slot; a wide tile holds at least 5 slots.
int64_t expert_narrow_tiles_capacity(int64_t n_experts, int64_t slots);
int64_t expert_wide_tiles_capacity(int64_t slots);

// One block: the lists for offsets [n_experts + 1] (n_experts <= 1024). Graph-capturable.
void plan_expert_tiles(const int32_t* offsets, int64_t n_experts, const ExpertTiles& tiles,
                       cudaStream_t stream);

}  // namespace dsv4::cuda
