// Structure: a CTA of four warps; each warp owns 16 weight rows (one MMA's A rows) and walks
// the tile list (plan_expert_tiles) like expert_stream_kernel. A warp streams its rows through
// its own ring of shared-memory stages with cp.async, 128 inputs per stage (one activation
// scale block: 16 rows × 64 bytes of codes and the rows' four weight scales), kStages - 1
// stages in flight; no CTA-wide barrier. ldmatrix hands lane (g, q) the four bytes q of block j
// of rows g and g + 8, which is exactly its A fragment for block j's MMA: the k order inside a
// block is permuted (even nibbles to k-slots 4q..4q+3, odd ones to 16 + 4q..), and the B
// fragment (tokens' e4m3 codes, read from L1) takes the same permutation; a 32-input sum does
// not depend on the order of its exact products. Token tiles of up to 8 tokens run one n8 MMA
// per block, wider ones (9-16) two.
#include "cuda/kernels/gemm/fp4_expert_mma.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda::gemm_detail {
namespace {

constexpr int kWarps = 4;
constexpr int kWarpRows = 16;
constexpr int kStepInputs = 128;
constexpr int64_t kTileSlots = 128;  // CTAs per row group; each loops over the tile list

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kStepWeightBytes = kWarpRows * kStepInputs / 2;
constexpr int kStepScaleBytes = kWarpRows * 4 * 4;  // four float scales per row (ue8m0: bytes)
constexpr int kStepBytes = kStepWeightBytes + kStepScaleBytes;
constexpr int kStages = 8;
// e2m1 code → e4m3 code of value · 2^-6; the sums are multiplied back at the end.
constexpr float kE2m1AsE4m3Unfold = 64.0f;

// Row r's 16-byte block b within a stage: rows of 64 bytes; the XOR puts the eight rows one
// ldmatrix matrix reads into eight different 16-byte bank groups.
__device__ __forceinline__ int swizzled(int row, int block) {
  return row * 64 + 16 * (block ^ ((row >> 1) & 3));
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

// One step's activations for NT n8 tiles: the B fragments' eight bytes per 32-input block and
// the activation scales of the accumulator columns; loaded a step ahead.
template <int NT>
struct StepActivations {
  uint2 codes[NT][4];
  float scale[NT][2];
};

template <int NT>
__device__ __forceinline__ void load_activations(StepActivations<NT>& a,
                                                 const uint8_t* const (&x_b)[NT],
                                                 const float* const (&x_s)[NT][2], int64_t step) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      a.codes[nt][j] = __ldg(reinterpret_cast<const uint2*>(x_b[nt] + step * kStepInputs + 32 * j));
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) a.scale[nt][i] = __ldg(x_s[nt][i] + step);
  }
}

// Warp: rows [row0, row0 + 16) of one expert times its tokens [tok0, tok0 + here) (here ≤ 8·NT).
template <int NT, bool kFloatScales>
__device__ __forceinline__ void multiply_tile(const StreamParams& p, uint8_t* ring,
                                              const uint8_t* w_expert, const uint8_t* s_expert,
                                              int64_t row0, int64_t first_token, int64_t tok0,
                                              int64_t here) {
  const int lane = int(threadIdx.x & 31u), g = lane >> 2, q = lane & 3;
  const int64_t steps = p.cols / kStepInputs;

  // Copies: lane (g, q) moves block q of rows g and g + 8; lanes 0..15 the scales of row lane.
  const uint8_t* w_src[2];
  int w_dst[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = g + 8 * i;
    const int64_t row = min(row0 + r, p.rows - 1);  // rows past the end: loaded, not stored
    w_src[i] = w_expert + row * p.w_row_bytes + 16 * q;
    w_dst[i] = swizzled(r, q);
  }
  const int64_t scale_row = min(row0 + (lane & 15), p.rows - 1);
  const uint8_t* s_src = s_expert + scale_row * p.w_scale_cols * (kFloatScales ? 4 : 1);
  const auto load_step = [&](int64_t step) {
    if (step < steps) {
      uint8_t* stage = ring + (step % kStages) * kStepBytes;
#pragma unroll
      for (int i = 0; i < 2; ++i) cp_async_16(stage + w_dst[i], w_src[i] + step * 64);
      if (lane < 16) {
        uint8_t* dst = stage + kStepWeightBytes + lane * (kFloatScales ? 16 : 4);
        if constexpr (kFloatScales) {
          cp_async_16(dst, s_src + step * 16);
        } else {
          cp_async_4(dst, s_src + step * 4);
        }
      }
    }
    cp_async_commit();  // empty past the end: the group count stays uniform
  };

  // B fragments: token g of each n8 tile, bytes 8q..8q+7 of each 32-input block; accumulator
  // columns (tokens 2q, 2q + 1) for the activation scales. Tokens past `here` repeat the last.
  const auto* x = static_cast<const uint8_t*>(p.x);
  const int64_t x_scale_cols = p.x_row_stride / kStepInputs;
  const uint8_t* x_b[NT];
  const float* x_s[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int64_t t = first_token + tok0 + min(int64_t(8 * nt + g), here - 1);
    x_b[nt] = x + t * p.x_row_stride + 8 * q;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t c = first_token + tok0 + min(int64_t(8 * nt + 2 * q + i), here - 1);
      x_s[nt][i] = p.x_scales + c * x_scale_cols;
    }
  }

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[nt][i] = 0.0f;
  }

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) load_step(s);
  StepActivations<NT> next;
  load_activations(next, x_b, x_s, 0);
  for (int64_t step = 0; step < steps; ++step) {
    cp_async_wait<kStages - 2>();
    __syncwarp();  // every lane's copies of this stage are visible; the oldest slot is free
    load_step(step + kStages - 1);
    const StepActivations<NT> act = next;
    load_activations(next, x_b, x_s, min(step + 1, steps - 1));

    const uint8_t* stage = ring + (step % kStages) * kStepBytes;
    const int m = lane >> 3, r = (lane & 7) + 8 * (m & 1);
    uint32_t words[4][2];  // [block][row g, row g + 8]
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint32_t f[4];
      ldmatrix_x4(f, stage + swizzled(r, 2 * half + (m >> 1)));
      words[2 * half][0] = f[0];
      words[2 * half][1] = f[1];
      words[2 * half + 1][0] = f[2];
      words[2 * half + 1][1] = f[3];
    }
    float s_top[4], s_bottom[4];
    row_scales<kFloatScales>(stage + kStepWeightBytes, g, s_top);
    row_scales<kFloatScales>(stage + kStepWeightBytes, g + 8, s_bottom);

    float partial[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[nt][i] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t a[4] = {e2m1_even_to_e4m3(words[j][0]), e2m1_even_to_e4m3(words[j][1]),
                             e2m1_odd_to_e4m3(words[j][0]), e2m1_odd_to_e4m3(words[j][1])};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint2 v = act.codes[nt][j];
        float d[4];
        // Even bytes to k-slots 4q..4q+3, odd ones to 16 + 4q.., as the weights' nibbles.
        mma_e4m3_16832(d, a, __byte_perm(v.x, v.y, 0x6420), __byte_perm(v.x, v.y, 0x7531));
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
      for (int i = 0; i < 4; ++i)
        acc[nt][i] = fmaf(partial[nt][i], act.scale[nt][i & 1], acc[nt][i]);
    }
  }
  cp_async_wait<0>();
  __syncwarp();  // the ring is refilled by the next tile

#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = row0 + g + 8 * (i >> 1);
      const int64_t token = 8 * nt + 2 * q + (i & 1);
      if (row >= p.rows || token >= here) continue;
      const float v = acc[nt][i] * kE2m1AsE4m3Unfold;
      const int64_t at = (first_token + tok0 + token) * p.rows + row;
      if (p.y_f32) p.y_f32[at] = v;
      if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(v);
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y): rows [64x, 64x + 64) and the tiles y, y + gridDim.y, ... of a tile list. kWide:
// the list of 5-16-token tiles (9-16 run two n8 MMAs per block).
template <bool kWide, bool kFloatScales>
__global__ void __launch_bounds__(kWarps * 32)
    fp4_expert_mma_kernel(const __grid_constant__ StreamParams p, const int32_t* __restrict__ tiles,
                          const int32_t* __restrict__ count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ alignas(128) uint8_t rings[kWarps][kStages * kStepBytes];
  const int warp = int(threadIdx.x >> 5);
  const int64_t row0 = (int64_t(blockIdx.x) * kWarps + warp) * kWarpRows;
  if (row0 >= p.rows) return;
  const int32_t n_tiles = *count;
  for (int32_t y = int32_t(blockIdx.y); y < n_tiles; y += int32_t(gridDim.y)) {
    const int32_t entry = tiles[y];
    const int64_t e = entry >> 16, tok0 = int64_t(entry & 0xffff) * 16;
    const int64_t first_token = p.expert_offsets[e];
    const int64_t here = min(p.expert_offsets[e + 1] - first_token - tok0, int64_t(16));
    const uint8_t* w = p.w + e * p.expert_w_bytes;
    const uint8_t* s = static_cast<const uint8_t*>(p.w_scales) + e * p.expert_scale_bytes;
    if (kWide && here > 8) {
      multiply_tile<2, kFloatScales>(p, rings[warp], w, s, row0, first_token, tok0, here);
    } else {
      multiply_tile<1, kFloatScales>(p, rings[warp], w, s, row0, first_token, tok0, here);
    }
  }
#else
  (void)p, (void)tiles, (void)count;
  __trap();  // launched only where fp4_expert_mma_available()
#endif
}

}  // namespace

bool fp4_expert_mma_available() {
#if defined(DSV4_SM90_KERNELS)
  return current_device_traits().major == 9;
#else
  return false;
#endif
}

void launch_fp4_expert_mma(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kUe8m0 && p.w_scale_storage != ScaleStorage::kF32) {
    fail("FP4 expert GEMM: the weight scales are neither ue8m0 bytes nor floats");
  }
  if (p.cols % kStepInputs != 0 || p.x_row_stride != p.cols || p.rows_per_group != p.rows) {
    fail("FP4 expert GEMM: {} inputs per row (a multiple of {} is needed)", p.cols, kStepInputs);
  }
  const auto launch = [&](auto wide, auto float_scales, const int32_t* list, int64_t capacity,
                          const int32_t* count) {
    constexpr int64_t kRowsPerBlock = int64_t(kWarps) * kWarpRows;
    const dim3 grid(unsigned((p.rows + kRowsPerBlock - 1) / kRowsPerBlock),
                    unsigned(std::min(capacity, kTileSlots)));
    fp4_expert_mma_kernel<decltype(wide)::value, decltype(float_scales)::value>
        <<<grid, kWarps * 32, 0, stream>>>(p, list, count);
    DSV4_CUDA_CHECK(cudaGetLastError());
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
