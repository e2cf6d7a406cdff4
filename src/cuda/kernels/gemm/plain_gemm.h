// GEMMs with fp32 activations and no activation quantization: the exact product
// y = x · dequant(W)ᵀ with fp32 accumulation (per scale block partial sums times s_w for
// FP8/FP4 weights, as cpu::linear's scaled_row_dot). Used for bf16 / f32 weights (MoE gate,
// compressor wkv/wgate, LM head, indexer weights_proj) and for the block-diagonal wo_a.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda {

// x: [m, w.cols] fp32 (16-byte aligned); any weight format. Mirrors cpu::linear for bf16/f32
// weights (and cpu::linear in fp32 numerics for FP8/FP4 weights).
void plain_gemm(const float* x, int64_t m, const DeviceLinearView& w, LinearOutput y,
                cudaStream_t stream);

// y = x · Wᵀ for a bf16 weight and bf16 activations (x: [m, groups·w.cols] bf16), grouped as
// grouped_gemm when groups > 1, on the sm_90 bf16 tensor cores (linear_wgmma.h: exact products,
// fp32 accumulation; the inputs split over `split` where the tiles alone leave SMs idle):
// cpu::linear / cpu::grouped_linear up to the order of fp32 additions, with the same bits for a
// token whatever the batch. Only where bf16_gemm_available(w, groups); elsewhere callers widen
// x to fp32 and run plain_gemm / grouped_gemm.
bool bf16_gemm_available(const DeviceLinearView& w, int64_t groups);
void bf16_gemm(const uint16_t* x, int64_t m, int64_t groups, const DeviceLinearView& w,
               LinearOutput y, cudaStream_t stream, SplitSums split = {});

// cpu::grouped_linear: input group g (columns [g·w.cols, (g+1)·w.cols) of x) meets weight rows
// [g·rows/groups, (g+1)·rows/groups). x: [m, groups·w.cols]; y: [m, w.rows].
void grouped_gemm(const float* x, int64_t m, int64_t groups, const DeviceLinearView& w,
                  LinearOutput y, cudaStream_t stream);

}  // namespace dsv4::cuda
