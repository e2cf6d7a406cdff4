// RMS normalisations of MODEL.md §2 on bf16 activations, official numerics (the twins of
// src/cpu/norms.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// y = bf16(w · (x · rsqrt(mean(x²) + eps))), fp32 math, one rounding. x, y: bf16 [rows, dim]
// (y == x allowed); weight: fp32 [dim].
void rms_norm(const uint16_t* x, int64_t rows, int64_t dim, const float* weight, float eps,
              uint16_t* y, cudaStream_t stream);

// The per-head query norm without weight, in bf16 arithmetic: every intermediate (x², their
// mean, + eps, rsqrt, the product) rounded to bf16, as cpu::unweighted_head_norm. x: bf16
// [rows, dim] in place (rows = tokens · heads).
void unweighted_head_norm(uint16_t* x, int64_t rows, int64_t dim, float eps, cudaStream_t stream);

}  // namespace dsv4::cuda
