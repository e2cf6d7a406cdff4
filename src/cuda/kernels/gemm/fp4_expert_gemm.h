// The routed experts' MXFP4 GEMMs on tensor cores (sm_90; internal to the gemm domain). Hopper
// has no FP4 tensor cores, so each e2m1 code becomes an e4m3 code (fp4_e4m3_conversion.cuh) in a
// register fragment of the FP8 warpgroup MMAs' A operand, against the FP8 activations from
// shared memory; the weight scales per 32 inputs and the activation scales per 128 are applied in
// fp32. Both read the experts' codes and scales in the kMmaTiles layout (fp4_fragment_order.cuh,
// order_experts_for_tensor_cores).
#pragma once

#include <cuda_runtime.h>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/weight_stream_formats.cuh"

namespace dsv4::cuda::gemm_detail {

// Decode sizes (fp4_expert_stream_wgmma.cu): the tile lists of plan_expert_tiles, 64 weight rows
// a CTA (128, a 64-row band a warpgroup, where p.m, the most tokens an expert may get, which the
// engine sets to the step's tokens, reaches kExpertWholeBandMinTokens, expert_tiles.h), one MMA per
// 32-input block; p as for expert_stream_kernel (FP4 weights with ue8m0 or float scales, FP8
// activations). Used below expert_wgmma_min_tokens (expert_tiles.h) tokens per step, at every
// tile width.
void launch_fp4_expert_stream(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream);

// Prefill sizes (fp4_expert_wgmma.cu): a resident CTA per SM walking tiles of 128 tokens of an
// expert against 128 of its weight rows, one MMA chain per 128 inputs where the rows' scales
// fold into the codes (p.w_row_exponents); used from expert_wgmma_min_tokens tokens where the
// rows are a multiple of 8 and there are at most kFp4ExpertWgmmaMaxExperts experts (each CTA
// lists the experts' tiles in shared memory).
inline constexpr int64_t kFp4ExpertWgmmaMaxExperts = 512;
void launch_fp4_expert_wgmma(const StreamParams& p, int64_t n_experts, cudaStream_t stream);

}  // namespace dsv4::cuda::gemm_detail
