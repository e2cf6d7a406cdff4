// Groups the routed (token, expert) slots by expert on the device, deterministically and with
// no host sync: fixed-size outputs sized for tokens · k, so the launches can be captured in a
// CUDA graph. Slot s = t · k + j is token t's j-th choice (experts[t, j]).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda {

// experts: int32 [tokens, k], every id in [0, n_experts) (n_experts < 1024).
// counts: int32 [n_experts], slots per expert; offsets: int32 [n_experts + 1], exclusive
// prefix sums (offsets[n_experts] = tokens · k); order: int32 [tokens · k], the slot at each
// grouped position (experts ascending, slots ascending within an expert, i.e. the CPU's
// member order); position: int32 [tokens · k], the inverse (grouped position of each slot).
// tiles (optional): the expert GEMMs' tile lists, listed in the counting launch as
// plan_expert_tiles would list them from `offsets`.
// Up to kGroupInOneLaunchSlots slots (decode steps), one launch: a one-block count + scan that
// also places the slots. More: that count + scan, then one block per expert placing its slots.
inline constexpr int64_t kGroupInOneLaunchSlots = 512;
void moe_group(const int32_t* experts, int64_t tokens, int64_t k, int64_t n_experts,
               int32_t* counts, int32_t* offsets, int32_t* order, int32_t* position,
               const ExpertTiles* tiles, cudaStream_t stream);

// The expert GEMMs' input in grouped order, already quantized: row p of out is row order[p] / k
// of the tokens' FP8 codes [tokens, dim] and activation scales [tokens, dim / 128]
// (quantize_activations_fp8's layout; dim a multiple of 128, codes 16-byte aligned).
void moe_gather_quantized(const uint8_t* codes, const float* scales, const int32_t* order,
                          int64_t tokens, int64_t k, int64_t dim, uint8_t* out_codes,
                          float* out_scales, cudaStream_t stream);

// The routed experts' w1|w3 GEMM on the grouped rows: y = bf16 [g | u] of [tokens · k,
// w13.rows]. Where the experts run on the sm_90 decode-size kernel (expert_gemm_streams) it
// reads the tokens' own rows (codes, scales as for moe_gather_quantized) through `order`, with
// no gathered copy; elsewhere moe_gather_quantized first copies them into grouped_codes /
// grouped_scales ([tokens · k, dim] scratch). The same sums either way.
void moe_experts_gate_up(const uint8_t* codes, const float* scales, const int32_t* order,
                         const int32_t* offsets, const ExpertTiles& tiles, int64_t tokens,
                         int64_t k, const PackedLinearsView& w13, uint8_t* grouped_codes,
                         float* grouped_scales, uint16_t* y, cudaStream_t stream);

}  // namespace dsv4::cuda
