// What the sm_90 warpgroup-MMA GEMMs (fp4_expert_wgmma.cu, linear_wgmma.cu) share
// (internal to the gemm domain): their tile (128 weight rows and 128 tokens a CTA, two
// consumer warpgroups; 128 inputs, one activation scale block, a stage), the ring cursor their
// producers and consumers follow, where a stage keeps its tokens' activation scales, and the
// promotion of a stage's MMA sums with those scales (the tokens are the MMA's N in both).
#pragma once

#include <cstdint>

#include "cuda/kernels/common/async_copy.cuh"

namespace dsv4::cuda::gemm_detail::wgmma_gemm {

constexpr int kRows = 128;    // weight rows per CTA
constexpr int kTokens = 128;  // tokens per tile: the wgmma N
constexpr int kStepInputs = 128;
constexpr int kConsumerThreads = 256;  // two warpgroups, each half of the tile
constexpr int kTokenScaleStride = 36;  // floats from one lane's run of scales to the next
constexpr int kTokenScaleBytes = 16 * kTokenScaleStride;  // a stage's activation scales

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// A stage's token codes: kTokens rows of kStepInputs e4m3 codes, 128-byte swizzle (1024-byte
// aligned), as wgmma reads a K-major operand. Token t's 16-byte chunk c goes to this offset.
__device__ __forceinline__ int token_code_offset(int t, int c) {
  return t * kStepInputs + 16 * (c ^ (t & 7));
}

// Token t's activation scale sits where consumer lane q = (t / 2) % 4 finds its 32 scales
// (tokens 8c + 2q, 8c + 2q + 1 for c < 16) as 128 contiguous bytes; the four lanes' runs start
// 144 bytes apart, on different banks.
__device__ __forceinline__ int token_scale_slot(int t) {
  return kTokenScaleStride * ((t >> 1) & 3) + 2 * (t >> 3) + (t & 1);
}

// Where the items of a sequence sit in a ring of kSize slots, followed without divisions: the
// slot, and the pass (item / kSize) whose parity its barriers' phases take.
template <int kSize>
struct RingCursor {
  int slot = 0;
  uint32_t pass = 0;
  __device__ explicit RingCursor(int item) { advance(item); }
  __device__ void advance(int by) {
    for (slot += by; slot >= kSize; slot -= kSize) ++pass;
  }
  // Waits until the consumers have freed the slot from its previous pass (none on the first).
  __device__ void wait_free(uint64_t* barriers) const {
    if (pass > 0) mbarrier_wait(&barriers[slot], (pass - 1) & 1u);
  }
};

// Lane q's activation scales of a stage for an MMA of kN tokens (token_scales: the stage's
// kTokenScaleBytes): s[i] holds the tokens of accumulator columns 2i (x, y) and 2i + 1 (z, w).
template <int kN = kTokens>
__device__ __forceinline__ void load_token_scales(const uint8_t* token_scales, int q,
                                                  float4 (&s)[kN / 16]) {
  const auto* scales = reinterpret_cast<const float4*>(token_scales) + kTokenScaleStride / 4 * q;
#pragma unroll
  for (int i = 0; i < kN / 16; ++i) s[i] = scales[i];
}

// acc[4c + e] += d[4c + e] · s_x(token 8c + 2q + (e & 1)) · (e < 2 ? scale_a : scale_b), with
// the stage's activation scales s_x (load_token_scales; powers of two, so the product of the
// scales is exact), for an MMA of kN tokens.
template <int kN = kTokens>
__device__ __forceinline__ void promote(const float4 (&scales)[kN / 16], const float (&d)[kN / 2],
                                        float scale_a, float scale_b, float (&acc)[kN / 2]) {
#pragma unroll
  for (int i = 0; i < kN / 16; ++i) {
    const float4 s = scales[i];
    const float token[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float row_scale = (e & 2) ? scale_b : scale_a;
      acc[8 * i + e] =
          fmaf(d[8 * i + e], token[2 * (e >> 2) + (e & 1)] * row_scale, acc[8 * i + e]);
    }
  }
}

// The same reading the scales from shared memory.
template <int kN = kTokens>
__device__ __forceinline__ void promote(const uint8_t* token_scales, int q,
                                        const float (&d)[kN / 2], float scale_a, float scale_b,
                                        float (&acc)[kN / 2]) {
  float4 scales[kN / 16];
  load_token_scales<kN>(token_scales, q, scales);
  promote<kN>(scales, d, scale_a, scale_b, acc);
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail::wgmma_gemm
