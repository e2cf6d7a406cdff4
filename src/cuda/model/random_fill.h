// GPU fills of random but valid values in the engine's storage formats, for benchmarks on real
// shapes without a checkpoint (random_weights.h, CudaModel::fill_random_context). Values come
// from a counter-based hash (splitmix64 of seed and element index), so a fill is a pure function
// of its seed and shape; normal-like variates are bounded by ±2·sqrt(3) (Irwin-Hall of four
// uniforms, as synthetic_random.h), which lets a scale chosen from that bound never saturate.
// Launchers enqueue on `stream` and do not synchronise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/attention/kv_views.h"

namespace dsv4::cuda {

// e4m3 codes [rows, cols] of values ~ N(0, stddev²) and the one fp32 block scale per 128x128
// block (scales [ceil(rows/128), ceil(cols/128)]), a power of two chosen so that no code
// saturates; codes are never NaN (0x7f / 0xff).
void fill_random_fp8(uint8_t* codes, float* scales, int64_t rows, int64_t cols, float stddev,
                     uint64_t seed, cudaStream_t stream);

// MXFP4: packed e2m1 [rows, cols/2] (low nibble = even column) of values ~ N(0, stddev²) and
// ue8m0 scale bytes [rows, cols/32] from each 32-block's amax. cols % 32 == 0.
void fill_random_fp4(uint8_t* packed, uint8_t* scales, int64_t rows, int64_t cols, float stddev,
                     uint64_t seed, cudaStream_t stream);

// n bf16 values (raw bits) ~ mean + N(0, stddev²).
void fill_random_bf16(uint16_t* out, int64_t n, float mean, float stddev, uint64_t seed,
                      cudaStream_t stream);

// n fp32 values ~ mean + N(0, stddev²), rounded to bf16 when `bf16_exact`.
void fill_random_f32(float* out, int64_t n, float mean, float stddev, bool bf16_exact,
                     uint64_t seed, cudaStream_t stream);

// A hash-routing table int32 [tokens, k]: each row k distinct experts in [0, experts).
// k <= 32 and k <= experts.
void fill_random_expert_table(int32_t* out, int64_t tokens, int32_t k, int32_t experts,
                              uint64_t seed, cudaStream_t stream);

// Rows [0, count) of `slot` in a paged KV-row view: random unit-variance rows encoded as
// KvRowFormat (FP8 nope dims with ue8m0 scales per 64, bf16 rope dims, zero padding).
void fill_random_kv_rows(const PagedRowsView& view, int32_t slot, int64_t count, int32_t head_dim,
                         int32_t rope_dim, uint64_t seed, cudaStream_t stream);

// Keys [0, count) of `slot` in a paged index-key view: random unit-variance keys encoded as
// IndexKeyFormat (packed e2m1 with ue8m0 scales per 32). dim % 32 == 0.
void fill_random_index_keys(const PagedRowsView& view, int32_t slot, int64_t count, int32_t dim,
                            uint64_t seed, cudaStream_t stream);

}  // namespace dsv4::cuda
