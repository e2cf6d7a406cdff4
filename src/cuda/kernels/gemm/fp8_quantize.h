// FP8 activation quantization before FP8/FP4 GEMMs (MODEL.md §2, core/quantize.h): per token
// per 128 inputs, s = 2^ceil(log2(max(amax, 1e-4) / 448)), q = e4m3_rne(clamp(x / s, ±448)).
// Bit-identical to dsv4::quantize_fp8(x, k, 128, ...) row by row.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// x: [m, k] (k a multiple of 128, x 16-byte aligned); codes: [m, k]; scales: [m, k/128].
void quantize_activations_fp8(const float* x, int64_t m, int64_t k, uint8_t* codes, float* scales,
                              cudaStream_t stream);
// The same from bf16 activations (raw bits).
void quantize_activations_fp8(const uint16_t* x, int64_t m, int64_t k, uint8_t* codes,
                              float* scales, cudaStream_t stream);

}  // namespace dsv4::cuda
