// The block quantizers of DeepSeek-V4's reference (MODEL.md §2), shared by every backend:
//   FP8 activations: per block, s = 2^ceil(log2(max(amax, 1e-4) * (1/448))),
//                    q = e4m3_rne(clamp(x / s, ±448)).
//   FP4 (indexer):   per 32 values, s = 2^ceil(log2(max(amax, 6 * 2^-126) * (1/6))),
//                    q = e2m1_rne(clamp(x / s, ±6)).
// The ceil(log2) is taken on the bits of the fp32 product, as the reference kernels do.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsv4 {

inline constexpr size_t kFp8ActivationBlock = 128;  // before FP8/FP4 GEMMs
inline constexpr size_t kFp8KvBlock = 64;           // KV rows and compressed entries
inline constexpr size_t kFp4Block = 32;

// Smallest power of two >= x for a positive, finite, normal float x.
float power_of_two_ceil(float x);

float fp8_block_scale(float amax);
float fp4_block_scale(float amax);

// Quantizes n values (n a multiple of block) into e4m3 codes and one power-of-two scale
// per block.
void quantize_fp8(const float* x, size_t n, size_t block, uint8_t* codes, float* scales);
// x <- e4m3(x / s) * s per block: the reference's in-place "FP8 simulation".
void fp8_round_trip(float* x, size_t n, size_t block);

// Quantizes n values (n a multiple of 32) into packed e2m1 (low nibble = even element) and
// one ue8m0 scale code per 32 values.
void quantize_fp4(const float* x, size_t n, uint8_t* packed, uint8_t* scale_codes);
void fp4_round_trip(float* x, size_t n);

}  // namespace dsv4
