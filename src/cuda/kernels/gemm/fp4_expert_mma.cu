// Structure: a CTA of four warps in two pairs; each pair owns 16 weight rows (one MMA's A rows),
// its two warps take the first and the second half of the inputs (twice the warps a decode
// step would otherwise have, for latency hiding) and add their sums through shared memory at
// the end of a token tile. All walk the tile list (plan_expert_tiles) like
// expert_stream_kernel. A warp streams through its own ring of shared-memory stages with
// cp.async, 128 inputs per stage (one activation scale block): its 16 rows' codes and scales
// and the tile's token codes and activation scales (StageLayout), several stages in flight, so
// that neither weights nor activations are waited for. ldmatrix hands lane (g, q) the four
// bytes q of block j of rows g and g + 8: the eight inputs the lane holds of block j in the
// two f16 MMAs (k16 each) that cover it. (An e4m3 mma.sync is no faster on sm_90: the compiler
// unpacks it to f16 the same way.) The k order inside a block is permuted (the even nibbles
// feed the first MMA, the odd ones the second), and the B fragments (the tokens' e4m3 codes,
// unpacked to f16) take the same permutation; a 32-input sum does not depend on the order of
// its exact products. Token tiles of up to 8 tokens run one n8 MMA pair per block, wider ones
// (9-16) two.
#include "cuda/kernels/gemm/fp4_expert_mma.h"

#include <algorithm>
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {
namespace {

constexpr int kWarps = 4;
constexpr int kPairs = kWarps / 2;  // a pair splits the inputs of 16 rows in two halves
constexpr int kWarpRows = 16;
constexpr int kStepInputs = 128;
constexpr int kMinBlocks = 6;  // narrow tiles: ≤ 80 registers, 6 CTAs per SM (one wave at decode)
constexpr int kMinBlocksWide = 4;  // 9-16-token tiles: ≤ 128 registers, no spills

// One stage of a warp's ring for tiles of up to kTokens tokens: the 16 rows' codes (at 0, 64
// bytes a row, swizzled), their scales (four per row: floats or ue8m0 bytes), the tokens' e4m3
// codes (128 bytes a token, swizzled) and their activation scales.
template <int kTokens, bool kFloatScales>
struct StageLayout {
  static constexpr int kScales = kWarpRows * kStepInputs / 2;
  static constexpr int kCodes = kScales + kWarpRows * (kFloatScales ? 16 : 4);
  static constexpr int kTokenScales = kCodes + kTokens * kStepInputs;
  static constexpr int kBytes = (kTokenScales + kTokens * 4 + 15) / 16 * 16;
  static constexpr int kStages = kTokens <= 4 ? 5 : 4;  // 6 (ue8m0) or 4 CTAs per SM
  static constexpr int kRingBytes = kStages * kBytes;
};

// Dynamic shared memory of a CTA: four warp rings, 128-byte aligned from a 128-byte slack.
template <bool kWide, bool kFloatScales>
__host__ __device__ constexpr int warp_ring_bytes() {
  return StageLayout<(kWide ? 16 : 4), kFloatScales>::kRingBytes;
}
template <bool kWide, bool kFloatScales>
__host__ __device__ constexpr int shared_bytes() {
  return kWarps * warp_ring_bytes<kWide, kFloatScales>() + 128;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// e2m1 code → e4m3 code of value · 2^-6; the sums are multiplied back at the end.
constexpr float kE2m1AsE4m3Unfold = 64.0f;

// Row r's 16-byte block b within a stage: rows of 64 bytes; the XOR puts the eight rows one
// ldmatrix matrix reads into eight different 16-byte bank groups.
__device__ __forceinline__ int swizzled(int row, int block) {
  return row * 64 + 16 * (block ^ ((row >> 1) & 3));
}

// Token t's 16-byte chunk c within a stage's codes: rows of 128 bytes; the XOR spreads the
// eight tokens a B-fragment load reads over the banks.
__device__ __forceinline__ int token_chunk(int token, int chunk) {
  return token * kStepInputs + 16 * (chunk ^ (token & 7));
}

// Four e2m1 codes (the even or the odd nibbles of a word, sign in bit 3 of the nibble) → four
// e4m3 codes: the three magnitude bits land on e4m3 bits 2..4, where both formats' exponent
// and mantissa (and e2m1's subnormal 0.5) read as the e2m1 value times 2^-6.
__device__ __forceinline__ uint32_t e2m1_even_to_e4m3(uint32_t w) {
  return ((w & 0x07070707u) << 2) | ((w & 0x08080808u) << 4);
}
__device__ __forceinline__ uint32_t e2m1_odd_to_e4m3(uint32_t w) {
  return ((w >> 2) & 0x1c1c1c1cu) | (w & 0x80808080u);
}

// Two e4m3 codes (bits 0..15, or 16..31 when kHigh) as an f16 pair (exact): one F2FP that
// reads the register half in place.
template <bool kHigh>
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t codes) {
  uint32_t pair;
  if constexpr (kHigh) {
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, hi;\n}\n"
        : "=r"(pair)
        : "r"(codes));
  } else {
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, lo;\n}\n"
        : "=r"(pair)
        : "r"(codes));
  }
  return pair;
}

// The four weight scales of a stage row (blocks 0..3).
template <bool kFloatScales>
__device__ __forceinline__ void row_scales(const uint8_t* stage_scales, int row, float (&s)[4]) {
  if constexpr (kFloatScales) {
    const float4 v = reinterpret_cast<const float4*>(stage_scales)[row];
    s[0] = v.x, s[1] = v.y, s[2] = v.z, s[3] = v.w;
  } else {
    const uint32_t codes = reinterpret_cast<const uint32_t*>(stage_scales)[row];
#pragma unroll
    for (int j = 0; j < 4; ++j) s[j] = ue8m0_byte_to_float(codes, j);
  }
}

// One warp: rows [row0, row0 + 16) of an expert times its tokens [tok0, tok0 + here) (here ≤
// 8·NT, ≤ kTokens) over the stages [begin, end) of the inputs; acc gets the sums (times 2^-6).
template <int kTokens, int NT, bool kFloatScales>
__device__ __forceinline__ void multiply_rows(const StreamParams& p, const uint8_t* ring_bytes,
                                              const uint8_t* w_expert, const uint8_t* s_expert,
                                              int64_t row0, int64_t first_token, int64_t tok0,
                                              int here, int begin, int end, float (&acc)[NT][4]) {
  const int lane = int(threadIdx.x & 31u), g = lane >> 2, q = lane & 3;
  const int n = end - begin;
  const uint32_t ring = shared_address(ring_bytes);
  using L = StageLayout<kTokens, kFloatScales>;

  // Copies: lane (g, q) moves block q of rows g and g + 8; lanes 0..15 the scales of row lane.
  const uint8_t* w_src[2];
  uint32_t w_dst[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = g + 8 * i;
    const int64_t row = min(row0 + r, p.rows - 1);  // rows past the end: loaded, not stored
    w_src[i] = w_expert + row * p.w_row_bytes + 16 * q + int64_t(begin) * 64;
    w_dst[i] = uint32_t(swizzled(r, q));
  }
  constexpr int kScaleStep = kFloatScales ? 16 : 4;  // scale bytes per row and stage
  const int64_t scale_row = min(row0 + (lane & 15), p.rows - 1);
  const uint8_t* s_src =
      s_expert + scale_row * p.w_scale_cols * (kFloatScales ? 4 : 1) + begin * kScaleStep;
  const uint32_t s_dst = uint32_t(L::kScales + (lane & 15) * kScaleStep);
  // The tile's token rows (codes and activation scales) from stage `begin` on.
  const auto* x = static_cast<const uint8_t*>(p.x);
  const int64_t x_scale_cols = p.x_row_stride / kStepInputs;
  // Lane chunks: 16 bytes each of the tile's token rows (offsets fixed for the tile, from a base
  // that moves one stage at a time), and the activation scale of token `lane`.
  constexpr int kTokenCopies = kTokens * 8 / 32;
  const uint8_t* x_src = x + (first_token + tok0) * p.x_row_stride + int64_t(begin) * kStepInputs;
  int32_t x_offset[kTokenCopies];
  uint32_t x_dst[kTokenCopies];
#pragma unroll
  for (int i = 0; i < kTokenCopies; ++i) {
    const int chunk = lane + 32 * i, t = min(chunk >> 3, here - 1);
    x_offset[i] = int32_t(t * p.x_row_stride) + 16 * (chunk & 7);
    x_dst[i] = uint32_t(L::kCodes + token_chunk(t, chunk & 7));
  }
  const float* xs_src =
      p.x_scales + (first_token + tok0 + min(lane, here - 1)) * x_scale_cols + begin;
  int issued = 0;
  uint32_t fill = ring;
  const auto issue_stage = [&] {
    if (issued < n) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        cp_async_16(fill + w_dst[i], w_src[i]);
        w_src[i] += 64;
      }
      if (lane < 16) {
        if constexpr (kFloatScales) {
          cp_async_16(fill + s_dst, s_src);
        } else {
          cp_async_4(fill + s_dst, s_src);
        }
      }
      s_src += kScaleStep;
#pragma unroll
      for (int i = 0; i < kTokenCopies; ++i) {
        if (lane + 32 * i < 8 * here) cp_async_16(fill + x_dst[i], x_src + x_offset[i]);
      }
      if (lane < here) cp_async_4(fill + L::kTokenScales + 4 * lane, xs_src);
      x_src += kStepInputs;
      xs_src += 1;
    }
    ++issued;
    fill = fill + L::kBytes == ring + L::kRingBytes ? ring : fill + L::kBytes;
    cp_async_commit();  // empty past the end: the group count stays uniform
  };

  // B fragments: token g of each n8 tile; accumulator columns: tokens 2q and 2q + 1. Tokens
  // past `here` read the last one (never stored).
  int b_offset[NT][4], scale_offset[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int t = min(8 * nt + g, here - 1);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      b_offset[nt][j] = L::kCodes + token_chunk(t, 2 * j + (q >> 1)) + 8 * (q & 1);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
      scale_offset[nt][i] = L::kTokenScales + 4 * min(8 * nt + 2 * q + i, here - 1);
  }

#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int k = 0; k < 4; ++k) acc[nt][k] = 0.0f;
  }
  const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  // ldmatrix rows: lanes 8m..8m+7 address matrix m = (rows 0-7 | 8-15) × (block 2h | 2h + 1).
  const int m = lane >> 3, r = (lane & 7) + 8 * (m & 1);
  const uint32_t ldm_offset[2] = {uint32_t(swizzled(r, m >> 1)),
                                  uint32_t(swizzled(r, 2 + (m >> 1)))};

#pragma unroll
  for (int s = 0; s < L::kStages - 1; ++s) issue_stage();
  uint32_t read = ring;
  for (int i = 0; i < n; ++i) {
    cp_async_wait<L::kStages - 2>();
    __syncwarp();  // every lane's copies of this stage are visible; the oldest slot is free
    issue_stage();
    const uint8_t* stage = ring_bytes + (read - ring);

    uint32_t words[4][2];  // [block][row g, row g + 8]
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint32_t f[4];
      ldmatrix_x4(f, read + ldm_offset[half]);
      words[2 * half][0] = f[0];
      words[2 * half][1] = f[1];
      words[2 * half + 1][0] = f[2];
      words[2 * half + 1][1] = f[3];
    }
    float s_top[4], s_bottom[4];
    row_scales<kFloatScales>(stage + L::kScales, g, s_top);
    row_scales<kFloatScales>(stage + L::kScales, g + 8, s_bottom);

    float partial[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int k = 0; k < 4; ++k) partial[nt][k] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t even[2] = {e2m1_even_to_e4m3(words[j][0]), e2m1_even_to_e4m3(words[j][1])};
      const uint32_t odd[2] = {e2m1_odd_to_e4m3(words[j][0]), e2m1_odd_to_e4m3(words[j][1])};
      // First MMA: nibbles 0, 2 (low half) and 4, 6 (high half); second: 1, 3 and 5, 7.
      const uint32_t a_even[4] = {e4m3x2_to_f16x2<false>(even[0]), e4m3x2_to_f16x2<false>(even[1]),
                                  e4m3x2_to_f16x2<true>(even[0]), e4m3x2_to_f16x2<true>(even[1])};
      const uint32_t a_odd[4] = {e4m3x2_to_f16x2<false>(odd[0]), e4m3x2_to_f16x2<false>(odd[1]),
                                 e4m3x2_to_f16x2<true>(odd[0]), e4m3x2_to_f16x2<true>(odd[1])};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint2 v = *reinterpret_cast<const uint2*>(stage + b_offset[nt][j]);
        const uint32_t b_even = __byte_perm(v.x, v.y, 0x6420);  // inputs 0, 2, 4, 6
        const uint32_t b_odd = __byte_perm(v.x, v.y, 0x7531);   // inputs 1, 3, 5, 7
        float d[4];
        mma_f16_16816(d, a_even, e4m3x2_to_f16x2<false>(b_even), e4m3x2_to_f16x2<true>(b_even),
                      zero);
        mma_f16_16816(d, a_odd, e4m3x2_to_f16x2<false>(b_odd), e4m3x2_to_f16x2<true>(b_odd), d);
        partial[nt][0] = fmaf(d[0], s_top[j], partial[nt][0]);
        partial[nt][1] = fmaf(d[1], s_top[j], partial[nt][1]);
        partial[nt][2] = fmaf(d[2], s_bottom[j], partial[nt][2]);
        partial[nt][3] = fmaf(d[3], s_bottom[j], partial[nt][3]);
      }
    }
    // s_x is a power of two: (Σ_j partial_j · s_w,j) · s_x adds the same products as the
    // reference's Σ_j partial_j · s_x · s_w,j, grouped differently.
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float x_scale = *reinterpret_cast<const float*>(stage + scale_offset[nt][k & 1]);
        acc[nt][k] = fmaf(partial[nt][k], x_scale, acc[nt][k]);
      }
    }
    read = read + L::kBytes == ring + L::kRingBytes ? ring : read + L::kBytes;
  }
  cp_async_wait<0>();
  __syncwarp();  // the ring is refilled by the next tile
}

// The two warps of a pair meet (barrier ids fixed at compile time: a computed id reserves all
// sixteen, which capped the CTAs per SM at four).
__device__ __forceinline__ void pair_barrier(int pair) {
  if (pair == 0) {
    named_barrier_sync(1, 64);
  } else {
    named_barrier_sync(2, 64);
  }
}

// A warp pair's token tile: the second-half warp hands its sums to the first through
// `exchange`, which adds them (first half + second half) and stores y.
template <int kTokens, int NT, bool kFloatScales>
__device__ __forceinline__ void multiply_tile(const StreamParams& p, const uint8_t* ring,
                                              float* exchange, int pair, int half,
                                              const uint8_t* w_expert, const uint8_t* s_expert,
                                              int64_t row0, int64_t first_token, int64_t tok0,
                                              int here) {
  const int lane = int(threadIdx.x & 31u), g = lane >> 2, q = lane & 3;
  const int steps = int(p.cols / kStepInputs), middle = (steps + 1) / 2;
  float acc[NT][4];
  multiply_rows<kTokens, NT, kFloatScales>(p, ring, w_expert, s_expert, row0, first_token, tok0,
                                           here, half == 0 ? 0 : middle, half == 0 ? middle : steps,
                                           acc);
  if (half == 1) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int k = 0; k < 4; ++k) exchange[(nt * 4 + k) * 32 + lane] = acc[nt][k];
    }
  }
  pair_barrier(pair);
  if (half == 0) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int64_t row = row0 + g + 8 * (k >> 1);
        const int token = 8 * nt + 2 * q + (k & 1);
        const float v = (acc[nt][k] + exchange[(nt * 4 + k) * 32 + lane]) * kE2m1AsE4m3Unfold;
        if (row >= p.rows || token >= here) continue;
        const int64_t at = (first_token + tok0 + token) * p.rows + row;
        if (p.y_f32) p.y_f32[at] = v;
        if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(v);
      }
    }
  }
  pair_barrier(pair);  // `exchange` is free for the next tile
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y): rows [32x, 32x + 32) (two warp pairs) and the tiles y, y + gridDim.y, ... of a
// tile list. kWide: the list of 5-16-token tiles (9-16 run two n8 MMAs per block).
template <bool kWide, bool kFloatScales>
__global__ void __launch_bounds__(kWarps * 32, kWide ? kMinBlocksWide : kMinBlocks)
    fp4_expert_mma_kernel(const __grid_constant__ StreamParams p, const int32_t* __restrict__ tiles,
                          const int32_t* __restrict__ count) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kTokens = kWide ? 16 : 4;
  // Offsetting the __shared__ array itself keeps accesses in the shared window (LDS/STS).
  extern __shared__ uint8_t rings_unaligned[];
  uint8_t* rings = rings_unaligned + ((128u - (shared_address(rings_unaligned) & 127u)) & 127u);
  uint8_t* ring = rings + warp_ring_bytes<kWide, kFloatScales>() * (threadIdx.x >> 5);
  __shared__ float exchange[kPairs][2 * 4 * 32];
  const int warp = int(threadIdx.x >> 5), pair = warp >> 1, half = warp & 1;
  const int64_t row0 = (int64_t(blockIdx.x) * kPairs + pair) * kWarpRows;
  if (row0 >= p.rows) return;  // both warps of the pair
  const int32_t n_tiles = *count;
  for (int32_t y = int32_t(blockIdx.y); y < n_tiles; y += int32_t(gridDim.y)) {
    const int32_t entry = tiles[y];
    const int64_t e = entry >> 16, tok0 = int64_t(entry & 0xffff) * 16;
    const int64_t first_token = p.expert_offsets[e];
    const int here = int(min(p.expert_offsets[e + 1] - first_token - tok0, int64_t(16)));
    if (here > kTokens) __trap();  // the narrow list holds tiles of at most 4 tokens
    const uint8_t* w = p.w + e * p.expert_w_bytes;
    const uint8_t* s = static_cast<const uint8_t*>(p.w_scales) + e * p.expert_scale_bytes;
    if (kWide && here > 8) {
      multiply_tile<kTokens, 2, kFloatScales>(p, ring, exchange[pair], pair, half, w, s, row0,
                                              first_token, tok0, here);
    } else {
      multiply_tile<kTokens, 1, kFloatScales>(p, ring, exchange[pair], pair, half, w, s, row0,
                                              first_token, tok0, here);
    }
  }
#else
  (void)p, (void)tiles, (void)count;
  __trap();  // launched only where sm90_kernels_available()
#endif
}

}  // namespace

void launch_fp4_expert_mma(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kUe8m0 && p.w_scale_storage != ScaleStorage::kF32) {
    fail("FP4 expert GEMM: the weight scales are neither ue8m0 bytes nor floats");
  }
  if (p.cols % kStepInputs != 0 || p.x_row_stride != p.cols || p.rows_per_group != p.rows) {
    fail("FP4 expert GEMM: {} inputs per row (a multiple of {} is needed)", p.cols, kStepInputs);
  }
  const auto launch = [&](auto wide, auto float_scales, const int32_t* list, int64_t capacity,
                          const int32_t* count) {
    constexpr int64_t kRowsPerBlock = int64_t(kPairs) * kWarpRows;
    const dim3 grid(unsigned((p.rows + kRowsPerBlock - 1) / kRowsPerBlock),
                    unsigned(std::min(capacity, kExpertTileSlots)));
    const auto kernel = fp4_expert_mma_kernel<decltype(wide)::value, decltype(float_scales)::value>;
    // All of the unified L1 as shared memory: the stage rings set the CTAs per SM (once).
    constexpr int kShared = shared_bytes<decltype(wide)::value, decltype(float_scales)::value>();
    static const bool attributes_set = [&] {
      DSV4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                           cudaSharedmemCarveoutMaxShared));
      DSV4_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
      return true;
    }();
    (void)attributes_set;
    launch_dependent(kernel, grid, kWarps * 32, kShared, stream, p, list, count);
  };
  const auto both = [&](auto float_scales) {
    launch(std::false_type{}, float_scales, tiles.narrow, tiles.narrow_capacity, tiles.counts);
    if (p.m > 4) {
      launch(std::true_type{}, float_scales, tiles.wide, tiles.wide_capacity, tiles.counts + 1);
    }
  };
  if (p.w_scale_storage == ScaleStorage::kF32) {
    both(std::true_type{});
  } else {
    both(std::false_type{});
  }
}

}  // namespace dsv4::cuda::gemm_detail
