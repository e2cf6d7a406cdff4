// Matrix products against checkpoint weights, y = x · Wᵀ, with the numerics of the weight's
// format (MODEL.md §2 "Linear layers by weight type"). Results are fp32 and unrounded; the
// caller rounds to bf16 where the reference does.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cpu {

// x: [m, w.cols], y: [m, w.rows].
// official + FP8/FP4 weight: x is quantized per token per 128 inputs (e4m3, power-of-two
// scales); each 128-input (FP8) or 32-input (FP4) partial sum is accumulated in fp32 and
// added times s_x · s_w. Plain weights, and every weight in fp32 mode, use the exact
// dequantized product.
void linear(const float* x, int64_t m, const LinearWeight& w, Numerics numerics, float* y);

// Dot product of two fp32 vectors (vectorised, fp32 accumulation).
float dot(const float* a, const float* b, int64_t n);

}  // namespace dsv4::cpu
