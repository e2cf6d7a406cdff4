// The routed experts' MXFP4 GEMM on tensor cores (sm_90; internal to the gemm domain). Hopper
// has no FP4 tensor cores, so each e2m1 code becomes the e4m3 code of value · 2^-6 (exact,
// subnormal 0.5 included) in registers, then an f16 pair, and two mma.sync m16n8k16 (f16,
// fp32 accumulation) cover one 32-input weight scale block together with the FP8 activations
// unpacked the same way; the block's fp32 result is the reference's per-32 partial, scaled by
// s_w there and by s_x per 128 inputs.
#pragma once

#include <cuda_runtime.h>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/weight_stream_formats.cuh"

namespace dsv4::cuda::gemm_detail {

// p as for expert_stream_kernel (FP4 weights with ue8m0 or float scales, FP8 activations).
void launch_fp4_expert_mma(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream);

// Prefill sizes (fp4_expert_wgmma.cu): the same product on FP8 warpgroup MMAs, a CTA per
// (expert, 128 weight rows) walking all of the expert's tokens; used from
// kExpertWgmmaMinTokens (expert_tiles.h) tokens per step.
void launch_fp4_expert_wgmma(const StreamParams& p, int64_t n_experts, cudaStream_t stream);

}  // namespace dsv4::cuda::gemm_detail
