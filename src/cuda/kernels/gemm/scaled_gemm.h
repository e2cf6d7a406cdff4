// Block-scaled GEMMs of FP8 and FP4 (MXFP4) weights with FP8-quantized activations, official
// numerics (MODEL.md §2): y[m, n] = Σ_blocks (Σ_{k in block} q_x · q_w) · s_x[m, k/128] · s_w,
// fp32 accumulation, with s_w per 128x128 block (FP8) or per row per 32 inputs (FP4).
// Matches cpu::linear(x, m, w, Numerics::kOfficial, y) up to the order of fp32 additions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda {

// x_codes: [m, w.cols] e4m3 and x_scales: [m, w.cols/128] from quantize_activations_fp8;
// w.format is kFp8 or kFp4, w.cols a multiple of 128. On sm_90, FP8 weights run on the FP8
// tensor cores at every token count (linear_wgmma.h: their accumulation inside a 128-input
// block, as DeepSeek's reference GEMM), which split the inputs over `split` where the tiles
// alone leave SMs idle; `tensor_cores = false` forces the CUDA-core kernel (tests compare).
void scaled_gemm(const uint8_t* x_codes, const float* x_scales, int64_t m,
                 const DeviceLinearView& w, LinearOutput y, cudaStream_t stream,
                 SplitSums split = {}, bool tensor_cores = true);

// The scratch that lets scaled_gemm() and bf16_gemm() split any shape as far as they want on
// this device (SplitSums).
int64_t scaled_gemm_split_floats();

// The routed experts' GEMM, sized on the device: expert e multiplies rows [offsets[e],
// offsets[e + 1]) of x into the same rows of y (offsets: device, count + 1 values, from
// moe_group), over the tile lists plan_expert_tiles made from the same offsets. `max_rows`
// bounds any expert's row count (a token picks an expert at most once, so the step's token
// count); it decides which launches run (see launch_tuned_experts). MXFP4 experts run on the
// tensor cores (fp4_expert_gemm.h) when they are in the kMmaTiles layout (where the device has
// sm_90 code, order_experts_for_tensor_cores puts them so), else on the CUDA-core
// weight-streaming kernel that other GPUs run (tests compare both).
void expert_scaled_gemm(const uint8_t* x_codes, const float* x_scales, const int32_t* offsets,
                        int64_t max_rows, const ExpertTiles& tiles,
                        const PackedLinearsView& experts, LinearOutput y, cudaStream_t stream);

// Whether expert_scaled_gemm runs these experts at `max_rows` on the sm_90 decode-size kernel
// (MXFP4 in the kMmaTiles layout, below expert_wgmma_min_tokens): the one that can read the
// tokens' own rows (expert_scaled_gemm_of_tokens).
bool expert_gemm_streams(int64_t max_rows, const PackedLinearsView& experts);

// expert_scaled_gemm where expert_gemm_streams holds, reading the tokens' own rows instead of a
// gathered copy: grouped row r is row order[r] / k of x_codes [tokens, cols] and x_scales
// [tokens, cols / 128] (quantize_activations_fp8; order: moe_group's, k experts per token).
// The same sums as expert_scaled_gemm on moe_gather_quantized's rows.
void expert_scaled_gemm_of_tokens(const uint8_t* x_codes, const float* x_scales,
                                  const int32_t* order, int64_t k, const int32_t* offsets,
                                  int64_t max_rows, const ExpertTiles& tiles,
                                  const PackedLinearsView& experts, LinearOutput y,
                                  cudaStream_t stream);

}  // namespace dsv4::cuda
