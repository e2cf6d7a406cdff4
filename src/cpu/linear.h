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

// Block-diagonal product of the grouped output projection: input group g (columns
// [g·cols, (g+1)·cols) of x) meets weight rows [g·rows/groups, (g+1)·rows/groups). Always the
// exact dequantized product (the reference multiplies wo_a in bf16, never through FP8).
// x: [m, groups·w.cols], y: [m, w.rows].
void grouped_linear(const float* x, int64_t m, int64_t groups, const LinearWeight& w, float* y);

// Dot product of two fp32 vectors (vectorised, fp32 accumulation).
float dot(const float* a, const float* b, int64_t n);

// The order in which dot adds its products. Every order is an equally valid reading of the
// reference (whose GPU kernels fix none); official numerics turn order-level differences into
// occasional whole FP8/bf16 steps, and kReverse lets tests measure how large that floor is when
// comparing two implementations (tests/cpu/summation_order_test.cpp, the GPU-vs-CPU tests).
enum class SummationOrder { kForward, kReverse };
void set_summation_order(SummationOrder order);  // process-wide; default kForward

}  // namespace dsv4::cpu
