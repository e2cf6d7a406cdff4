// Routed MXFP4 experts at prefill sizes on sm_90 FP8 warpgroup MMAs (fp4_expert_mma.h).
//
// Structure: a CTA of two warpgroups takes one expert and 128 of its weight rows (64 per
// warpgroup) and walks all of the expert's tokens in tiles of 128 (the wgmma N). The inputs go
// through a ring of stages of 128 inputs each (one activation scale block): the tile's e4m3
// token codes in the 128-byte-swizzled K-major layout wgmma reads, the rows' FP4 codes and
// weight scales, and the tokens' activation scales, filled with cp.async by all threads. The
// weights' A fragments are built in registers (fp4_wgmma_fragments.cuh).
//
// Two main loops, chosen per CTA from its rows' weight scales:
//   - scale-folded (the usual case): each 32-input block's scale exponent, relative to its
//     row's largest, is folded into the e4m3 codes, so four chained k32 MMAs cover a stage and
//     their sum is promoted once with the activation scale; the row's largest scale multiplies
//     the result at the end. The MMAs of stage i run while the fragments of stage i + 1 are
//     built. Needs every block exponent within 11 of its row's largest and power-of-two scales.
//   - exact per block (any other rows): unscaled codes, one k32 MMA per block into a fresh
//     accumulator, promoted with its weight scale times the activation scale.
// Both follow the official numerics up to the order of fp32 additions and the FP8 tensor
// cores' accumulation inside an MMA chain.
#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/fp4_expert_mma.h"
#include "cuda/kernels/gemm/fp4_wgmma_fragments.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda::gemm_detail {
namespace {

constexpr int kThreads = 256;  // two warpgroups
constexpr int kRows = 128;     // weight rows per CTA, 64 per warpgroup
constexpr int kTokens = 128;   // tokens per tile: the wgmma N
constexpr int kStepInputs = 128;
constexpr int kStages = 6;

// One stage: token codes first (1024-byte aligned for the swizzle), then the weight codes
// (weight_chunk), the weight scales (float or ue8m0), the activation scales.
constexpr int kCodesOffset = 0;
constexpr int kWeightsOffset = kCodesOffset + kTokens * kStepInputs;
constexpr int kWeightScalesOffset = kWeightsOffset + kRows * kStepInputs / 2;
constexpr int kTokenScalesOffset = kWeightScalesOffset + kRows * 16;
constexpr int kTokenScaleStride = 36;  // floats from one lane's run of scales to the next
constexpr int kStageBytes = (kTokenScalesOffset + 16 * kTokenScaleStride + 1023) / 1024 * 1024;
constexpr int kSharedBytes = kStages * kStageBytes + 1024;

// Largest spread of block exponents within a row that the scale-folded loop takes: s ≥ −5,
// where every e2m1 value times 2^s is an e4m3 normal (fp4_wgmma_fragments.cuh).
constexpr uint32_t kMaxFoldedSpread = 11;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// The unscaled codes are value · 2^-6; the exact loop multiplies its sums back.
constexpr float kE2m1AsE4m3Unfold = 64.0f;

// Token t's activation scale sits where lane q = (t / 2) % 4 finds its 32 scales (tokens
// 8c + 2q, 8c + 2q + 1 for c < 16) as 128 contiguous bytes; the four lanes' runs start 144
// bytes apart, on different banks.
__device__ __forceinline__ int token_scale_slot(int t) {
  return kTokenScaleStride * ((t >> 1) & 3) + 2 * (t >> 3) + (t & 1);
}

// The copies of the stage ring for one token tile: this thread's first sources (advanced by a
// stage's inputs each step; its other chunks are a fixed number of rows further) and its
// destinations within a stage, worked out once.
template <bool kFloatScales>
struct StageCopier {
  static constexpr int kScaleStep = kFloatScales ? 16 : 4;    // scale bytes per row and stage
  static constexpr int kCodeChunks = kTokens * 8 / kThreads;  // rows 32 apart
  static constexpr int kWeightChunks = kRows * 4 / kThreads;  // rows 64 apart

  uint8_t* smem;
  int steps, code_rows, weight_rows;  // how many of this thread's token / weight rows exist
  const uint8_t* code_src;
  const uint8_t* weight_src;
  const uint8_t* scale_src;
  const float* token_scale_src;
  int64_t code_chunk_stride, weight_chunk_stride;
  uint32_t code_dst, weight_dst, scale_dst, token_scale_dst;
  bool scale_valid, token_scale_valid;

  __device__ StageCopier(const StreamParams& p, uint8_t* smem_, const uint8_t* w,
                         const uint8_t* scales, int64_t row0, int64_t first_token, int here,
                         int tid)
      : smem(smem_), steps(int(p.cols / kStepInputs)) {
    const int t = tid >> 3, c = tid & 7;
    code_rows = here > t ? (here - t + 31) / 32 : 0;
    code_src = static_cast<const uint8_t*>(p.x) + (first_token + t) * p.x_row_stride + 16 * c;
    code_chunk_stride = 32 * p.x_row_stride;
    code_dst = kCodesOffset + t * kStepInputs + 16 * (c ^ (t & 7));  // + 32 rows: + 4096
    const int r = tid >> 2, rc = tid & 3;
    const int64_t rows_left = p.rows - row0 - r;
    weight_rows = rows_left > 0 ? int(min((rows_left + 63) / 64, int64_t(kWeightChunks))) : 0;
    weight_src = w + (row0 + r) * p.w_row_bytes + 16 * rc;
    weight_chunk_stride = 64 * p.w_row_bytes;
    weight_dst = kWeightsOffset + weight_chunk(r, rc);  // + 64 rows: + 4096
    scale_valid = tid < kRows;
    scale_src = scales + min(row0 + tid, p.rows - 1) * p.w_scale_cols * (kFloatScales ? 4 : 1);
    scale_dst = kWeightScalesOffset + tid * kScaleStep;
    token_scale_valid = tid < here;
    token_scale_src = p.x_scales + (first_token + min(tid, here - 1)) * (p.cols / kStepInputs);
    token_scale_dst = kTokenScalesOffset + 4 * token_scale_slot(tid);
  }

  __device__ const uint8_t* stage(int step) const { return smem + (step % kStages) * kStageBytes; }

  // Starts the copies of stage `step` (nothing past the last) and commits them as one group,
  // so that every thread's group count stays uniform. Token and weight rows past the end keep
  // whatever the stage held: their MMA rows and columns are never stored.
  __device__ void issue(int step) const {
    if (step < steps) {
      const uint32_t base = shared_address(smem + (step % kStages) * kStageBytes);
#pragma unroll
      for (int i = 0; i < kCodeChunks; ++i) {
        if (i < code_rows) {
          cp_async_16(base + code_dst + i * 32 * kStepInputs,
                      code_src + i * code_chunk_stride + step * kStepInputs);
        }
      }
#pragma unroll
      for (int i = 0; i < kWeightChunks; ++i) {
        if (i < weight_rows) {
          cp_async_16(base + weight_dst + i * 64 * (kStepInputs / 2),
                      weight_src + i * weight_chunk_stride + step * (kStepInputs / 2));
        }
      }
      if (scale_valid) {
        if constexpr (kFloatScales) {
          cp_async_16(base + scale_dst, scale_src + step * kScaleStep);
        } else {
          cp_async_4(base + scale_dst, scale_src + step * kScaleStep);
        }
      }
      if (token_scale_valid) cp_async_4(base + token_scale_dst, token_scale_src + step);
    }
    cp_async_commit();
  }
};

// Row r's four weight scale exponent codes of a stage, byte j = block j (a float scale 2^e
// has e + 127 in its exponent bits, and 2^-127 gives 0, as in ue8m0).
template <bool kFloatScales>
__device__ __forceinline__ uint32_t scale_codes(const uint8_t* stage, int row) {
  if constexpr (kFloatScales) {
    const uint4 bits = reinterpret_cast<const uint4*>(stage + kWeightScalesOffset)[row];
    return (bits.x >> 23) | ((bits.y >> 23) << 8) | ((bits.z >> 23) << 16) | ((bits.w >> 23) << 24);
  } else {
    return reinterpret_cast<const uint32_t*>(stage + kWeightScalesOffset)[row];
  }
}

template <bool kFloatScales>
__device__ __forceinline__ float weight_scale(const uint8_t* stage, int row, int block) {
  if constexpr (kFloatScales) {
    return reinterpret_cast<const float*>(stage + kWeightScalesOffset)[row * 4 + block];
  } else {
    return ue8m0_byte_to_float(reinterpret_cast<const uint32_t*>(stage + kWeightScalesOffset)[row],
                               block);
  }
}

// acc[4c + e] += d[4c + e] · s_x(token 8c + 2q + (e & 1)) · (e < 2 ? scale_a : scale_b), with
// the stage's activation scales s_x (all of them powers of two, so the product of the scales
// is exact and the result is the reference's partial · s_w · s_x, up to the order of additions).
__device__ __forceinline__ void promote(const uint8_t* stage, int q, const float (&d)[64],
                                        float scale_a, float scale_b, float (&acc)[64]) {
  const auto* scales =
      reinterpret_cast<const float4*>(stage + kTokenScalesOffset) + kTokenScaleStride / 4 * q;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 s = scales[i];  // tokens of columns 2i (x, y) and 2i + 1 (z, w)
    const float token[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float row_scale = (e & 2) ? scale_b : scale_a;
      acc[8 * i + e] =
          fmaf(d[8 * i + e], token[2 * (e >> 2) + (e & 1)] * row_scale, acc[8 * i + e]);
    }
  }
}

// A row's largest scale exponent code and whether the scale-folded loop can take the row.
// The four lanes of a quad share their rows and split the scan.
template <bool kFloatScales>
__device__ uint32_t scan_row_scales(const uint8_t* row_scales, int64_t blocks, int q,
                                    bool& foldable) {
  uint32_t high = 0, low = 0xffffffffu;
  bool powers_of_two = true;
  if constexpr (kFloatScales) {
    const auto* bits = reinterpret_cast<const uint32_t*>(row_scales);
    for (int64_t i = q; i < blocks; i += 4) {
      const uint32_t b = __ldg(bits + i), code = b >> 23;
      powers_of_two &= b == 0x00400000u || ((b & 0x807fffffu) == 0u && code != 0u);
      high = max(high, code);
      low = min(low, code);
    }
  } else {
    const auto* words = reinterpret_cast<const uint32_t*>(row_scales);
    uint32_t high4 = 0u, low4 = 0xffffffffu;
    for (int64_t i = q; i < blocks / 4; i += 4) {
      const uint32_t codes = __ldg(words + i);
      high4 = __vmaxu4(high4, codes);
      low4 = __vminu4(low4, codes);
    }
    high = max(max(high4 & 0xffu, (high4 >> 8) & 0xffu), max((high4 >> 16) & 0xffu, high4 >> 24));
    low = min(min(low4 & 0xffu, (low4 >> 8) & 0xffu), min((low4 >> 16) & 0xffu, low4 >> 24));
  }
#pragma unroll
  for (int offset = 1; offset < 4; offset <<= 1) {
    high = max(high, __shfl_xor_sync(0xffffffffu, high, offset));
    low = min(low, __shfl_xor_sync(0xffffffffu, low, offset));
    powers_of_two = __shfl_xor_sync(0xffffffffu, int(powers_of_two), offset) && powers_of_two;
  }
  // The result is scaled by 2^(high − 127 − 6) at the end: a normal float.
  foldable = powers_of_two && high - low <= kMaxFoldedSpread && high >= 7u && high <= 254u;
  return high;
}

// Scale-folded main loop over one token tile: per stage four chained k32 MMAs on codes that
// carry the block scales relative to the row's largest (high_a / high_b), promoted with the
// activation scales; the next stage's fragments are built while the MMAs run.
template <bool kFloatScales>
__device__ void folded_tile(const StageCopier<kFloatScales>& copier, int q, int row_a, int row_b,
                            uint32_t high_a, uint32_t high_b, float (&acc)[64]) {
  const uint64_t codes_descriptor = smem_descriptor(copier.smem + kCodesOffset, 16, 1024);
  const FoldedRowTables fold_a(high_a), fold_b(high_b);
  const auto build = [&](int step, uint32_t(&a)[16]) {
    const uint8_t* stage = copier.stage(step);
    const uint32_t codes_a = scale_codes<kFloatScales>(stage, row_a);
    const uint32_t codes_b = scale_codes<kFloatScales>(stage, row_b);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint2 table_a = fold_a(codes_a, j), table_b = fold_b(codes_b, j);
      const uint32_t nib_a = lane_nibbles(
          *reinterpret_cast<const uint4*>(stage + kWeightsOffset + weight_chunk(row_a, j)), q);
      const uint32_t nib_b = lane_nibbles(
          *reinterpret_cast<const uint4*>(stage + kWeightsOffset + weight_chunk(row_b, j)), q);
      a[4 * j + 0] = e2m1x4_to_e4m3(nib_a, table_a);
      a[4 * j + 1] = e2m1x4_to_e4m3(nib_b, table_b);
      a[4 * j + 2] = e2m1x4_to_e4m3(nib_a >> 16, table_a);
      a[4 * j + 3] = e2m1x4_to_e4m3(nib_b >> 16, table_b);
    }
  };
  float d[64];
  // One stage: MMAs on `a`, the next stage's copies and fragments into `a_next`, promotion.
  const auto run_stage = [&](int step, const uint32_t(&a)[16], uint32_t(&a_next)[16]) {
    const int slot = step % kStages;
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      // Descriptors advance in 16-byte units of their start address: 32 bytes per block.
      const uint32_t a_block[4] = {a[4 * j], a[4 * j + 1], a[4 * j + 2], a[4 * j + 3]};
      wgmma_m64n128k32_e4m3_rs(
          d, a_block, codes_descriptor + uint64_t((slot * kStageBytes + 32 * j) >> 4), j > 0);
    }
    wgmma_commit();
    // Stage step + 1 has landed (for every thread); the slot refilled next held step − 1,
    // which every thread has finished with.
    cp_async_wait<kStages - 3>();
    fence_proxy_async_shared();
    __syncthreads();
    copier.issue(step + kStages - 1);
    if (step + 1 < copier.steps) build(step + 1, a_next);
    wgmma_wait<0>();
    wgmma_fence_operands(d);
    promote(copier.stage(step), q, d, 1.0f, 1.0f, acc);  // the row scales come at the end
  };

  uint32_t a0[16], a1[16];
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) copier.issue(i);
  cp_async_wait<kStages - 2>();
  fence_proxy_async_shared();
  __syncthreads();
  build(0, a0);
  for (int step = 0; step < copier.steps; step += 2) {
    run_stage(step, a0, a1);
    if (step + 1 < copier.steps) run_stage(step + 1, a1, a0);
  }
  const float scale_a = __uint_as_float((high_a - 6u) << 23);
  const float scale_b = __uint_as_float((high_b - 6u) << 23);
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] *= (i & 2) ? scale_b : scale_a;
}

// Exact main loop over one token tile: one k32 MMA per weight scale block on unscaled codes,
// each promoted with its block's weight scale and the stage's activation scales.
template <bool kFloatScales>
__device__ void exact_tile(const StageCopier<kFloatScales>& copier, int q, int row_a, int row_b,
                           float (&acc)[64]) {
  const uint64_t codes_descriptor = smem_descriptor(copier.smem + kCodesOffset, 16, 1024);
  float d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) copier.issue(i);
  for (int step = 0; step < copier.steps; ++step) {
    cp_async_wait<kStages - 2>();
    fence_proxy_async_shared();  // this thread's copies are visible to wgmma
    __syncthreads();             // everyone's; the slot issued next is no longer read
    copier.issue(step + kStages - 1);
    const int slot = step % kStages;
    const uint8_t* stage = copier.stage(step);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t nib_a = lane_nibbles(
          *reinterpret_cast<const uint4*>(stage + kWeightsOffset + weight_chunk(row_a, j)), q);
      const uint32_t nib_b = lane_nibbles(
          *reinterpret_cast<const uint4*>(stage + kWeightsOffset + weight_chunk(row_b, j)), q);
      const uint32_t a[4] = {e2m1x4_to_e4m3(nib_a), e2m1x4_to_e4m3(nib_b),
                             e2m1x4_to_e4m3(nib_a >> 16), e2m1x4_to_e4m3(nib_b >> 16)};
      wgmma_fence();
      wgmma_m64n128k32_e4m3_rs(
          d, a, codes_descriptor + uint64_t((slot * kStageBytes + 32 * j) >> 4), false);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(d);
      promote(stage, q, d, weight_scale<kFloatScales>(stage, row_a, j) * kE2m1AsE4m3Unfold,
              weight_scale<kFloatScales>(stage, row_b, j) * kE2m1AsE4m3Unfold, acc);
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y): rows [128x, 128x + 128) of expert y, all of its tokens.
template <bool kFloatScales>
__global__ void __launch_bounds__(kThreads, 1)
    fp4_expert_wgmma_kernel(const __grid_constant__ StreamParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x), q = tid & 3;
  const int64_t e = blockIdx.y, row0 = int64_t(blockIdx.x) * kRows;
  const int64_t first_token = p.expert_offsets[e];
  const int64_t count = p.expert_offsets[e + 1] - first_token;
  if (count == 0) return;  // the whole CTA
  const auto* scales = static_cast<const uint8_t*>(p.w_scales) + e * p.expert_scale_bytes;
  const uint8_t* w = p.w + e * p.expert_w_bytes;

  // This thread's A rows (within the CTA's 128) and accumulator columns.
  const int row_a = 64 * (tid >> 7) + 16 * ((tid >> 5) & 3) + (tid & 31) / 4, row_b = row_a + 8;
  const int64_t scale_row_bytes = p.w_scale_cols * (kFloatScales ? 4 : 1);
  bool foldable_a = false, foldable_b = false;
  const uint32_t high_a = scan_row_scales<kFloatScales>(
      scales + min(row0 + row_a, p.rows - 1) * scale_row_bytes, p.w_scale_cols, q, foldable_a);
  const uint32_t high_b = scan_row_scales<kFloatScales>(
      scales + min(row0 + row_b, p.rows - 1) * scale_row_bytes, p.w_scale_cols, q, foldable_b);
  const bool folded = __syncthreads_and(foldable_a && foldable_b) != 0;

  for (int64_t tok0 = 0; tok0 < count; tok0 += kTokens) {
    const int here = int(min(count - tok0, int64_t(kTokens)));
    const StageCopier<kFloatScales> copier(p, smem, w, scales, row0, first_token + tok0, here, tid);
    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.0f;
    if (folded) {
      folded_tile(copier, q, row_a, row_b, high_a, high_b, acc);
    } else {
      exact_tile(copier, q, row_a, row_b, acc);
    }
    cp_async_wait<0>();
    __syncthreads();  // the ring is refilled by the next tile

#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const int64_t row = row0 + ((i & 2) ? row_b : row_a);
      const int token = 8 * (i >> 2) + 2 * q + (i & 1);
      if (row >= p.rows || token >= here) continue;
      const int64_t at = (first_token + tok0 + token) * p.rows + row;
      if (p.y_f32) p.y_f32[at] = acc[i];
      if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(acc[i]);
    }
  }
#else
  (void)p;
  __trap();  // launched only where fp4_expert_mma_available()
#endif
}

}  // namespace

void launch_fp4_expert_wgmma(const StreamParams& p, int64_t n_experts, cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kUe8m0 && p.w_scale_storage != ScaleStorage::kF32) {
    fail("FP4 expert GEMM: the weight scales are neither ue8m0 bytes nor floats");
  }
  if (p.cols % kStepInputs != 0 || p.x_row_stride != p.cols || p.rows_per_group != p.rows) {
    fail("FP4 expert GEMM: {} inputs per row (a multiple of {} is needed)", p.cols, kStepInputs);
  }
  const dim3 grid(unsigned((p.rows + kRows - 1) / kRows), unsigned(n_experts));
  const auto launch = [&](auto float_scales) {
    const auto kernel = fp4_expert_wgmma_kernel<decltype(float_scales)::value>;
    static const bool configured = [&] {
      DSV4_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
      return true;
    }();
    (void)configured;
    kernel<<<grid, kThreads, kSharedBytes, stream>>>(p);
    DSV4_CUDA_CHECK(cudaGetLastError());
  };
  if (p.w_scale_storage == ScaleStorage::kF32) {
    launch(std::true_type{});
  } else {
    launch(std::false_type{});
  }
}

}  // namespace dsv4::cuda::gemm_detail
