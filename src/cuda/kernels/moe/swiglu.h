// The clamped SwiGLU between an expert's w1/w3 and w2 GEMMs (MODEL.md §2 "MoE"), the twin of
// the middle of cpu::expert_forward.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// h = bf16(silu(min(g, L)) · clamp(u, −L, L) · weight) for every element of [rows, inter]
// (no clamp when limit <= 0). gate, up: bf16 (the rounded w1 / w3 outputs), rows gate_stride /
// up_stride values apart (a fused [g | u] GEMM output has stride 2·inter and up = gate +
// inter); out: bf16 [rows, inter]. Routed experts: row r is grouped position r and its weight
// is route_weights[order[r]] (moe_route's weights, moe_group's order); the shared expert
// passes both null (no weight).
void swiglu(const uint16_t* gate, int64_t gate_stride, const uint16_t* up, int64_t up_stride,
            int64_t rows, int64_t inter, const float* route_weights, const int32_t* order,
            float limit, uint16_t* out, cudaStream_t stream);

// The same h quantized for the w2 GEMM without storing it: codes [rows, inter] and scales
// [rows, inter / 128] exactly as quantize_activations_fp8 gives them from swiglu's output
// (inter a multiple of 128; gate and up 8-byte aligned, strides multiples of 4).
void swiglu_quantize_fp8(const uint16_t* gate, int64_t gate_stride, const uint16_t* up,
                         int64_t up_stride, int64_t rows, int64_t inter, const float* route_weights,
                         const int32_t* order, float limit, uint8_t* codes, float* scales,
                         cudaStream_t stream);

}  // namespace dsv4::cuda
