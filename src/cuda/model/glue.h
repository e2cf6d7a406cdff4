// Small element-wise steps between the domain kernels of the forward pass (src/cuda/model):
// dtype conversions and the indexer query's tail, the twins of the loops in
// src/cpu/attention.cpp that have no kernel of their own.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// out[i] = float(x[i]) for n bf16 values (the fp32 input of a GEMM).
void bf16_to_f32(const uint16_t* x, int64_t n, float* out, cudaStream_t stream);

// x[i] = bf16(x[i] · scale), in place (the indexer weights' dI^-0.5 · nI^-0.5).
void scale_bf16(uint16_t* x, int64_t n, float scale, cudaStream_t stream);

// The indexer query heads after RoPE, as cpu::AttentionLayer::project in official numerics:
// Walsh-Hadamard (Sylvester order) · dim^-0.5, bf16, FP4 round trip (32-wide blocks). x: bf16
// [rows, dim] in place; dim a power of two, 32 <= dim <= 1024.
void indexer_query_rotate(uint16_t* x, int64_t rows, int64_t dim, cudaStream_t stream);

}  // namespace dsv4::cuda
