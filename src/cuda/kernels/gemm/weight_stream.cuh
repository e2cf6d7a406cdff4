// The weight-streaming GEMM shared by the linear-layer kernels (internal to the gemm domain):
// y[m, n] = Σ_k x[m, k] · W[n, k] for a weight kept in its checkpoint format.
//
// Structure: each warp owns R consecutive output rows and one tile of MT tokens (grid.y). A lane
// reads 16 bytes of each of its R weight rows per step (one "chunk": 16 e4m3 codes, 32 packed
// e2m1 codes, 8 bf16 or 4 f32 values), U steps at a time, with the chunks' weight scales,
// through the non-allocating read-only path; at small m the next U steps are loaded before the
// current ones are used (register double buffering). The warp covers 512 consecutive bytes of
// a row per step. The chunk's activations (the same for all R rows, read from L1) are decoded
// once per token, and each (row, token) pair gets the chunk's partial dot product Σ a·w in
// fp32, which is then added times s_x · s_w: a chunk never straddles a scale block (16 | 128,
// 32 = 32), so this is the reference's per-block rule with only the order of the fp32
// additions changed (the scales are powers of two, so p · s_x · s_w is exact). Lanes reduce
// with shuffles at the end.
//
// Next optimisation: for m > 4 this is FMA-bound (m FMAs per weight element); decode weights
// to f16 (exact for e4m3 and e2m1) and use mma.sync m16n8k16 with fp32 accumulation, stage the
// activations in shared memory, and keep the bf16/f32 plain path for tiny shapes only.
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda::gemm_detail {

inline constexpr int kWarpsPerBlock = 4;
inline constexpr int kThreadsPerBlock = 32 * kWarpsPerBlock;

struct StreamParams {
  const uint8_t* w = nullptr;      // weight rows, w_row_bytes each (16-byte aligned)
  const void* w_scales = nullptr;  // FP8: [ceil(rows/128), scale_cols]; FP4: [rows, cols/32]
  ScaleStorage w_scale_storage = ScaleStorage::kF32;  // float, ue8m0 or e4m3 bytes
  const float* w_row_scales = nullptr;                // NVFP4: [rows], times each finished output
  int64_t rows = 0, cols = 0;
  int64_t w_row_bytes = 0;
  int64_t w_scale_cols = 0;
  const void* x = nullptr;          // float values or e4m3 codes, [m, x_row_stride]
  const float* x_scales = nullptr;  // e4m3 codes only: [m, x_row_stride / 128]
  int64_t x_row_stride = 0;         // elements between consecutive tokens
  int64_t rows_per_group = 0;       // rows r read x columns [g·cols, (g+1)·cols), g = r / this
  int64_t m = 0;
  float* y_f32 = nullptr;      // [m, rows], optional
  uint16_t* y_bf16 = nullptr;  // [m, rows], optional
  // Expert-grouped launches (grid.z = expert e): e's weight starts expert_w_bytes · e bytes
  // into w (its scales expert_scale_bytes · e into w_scales) and its tokens are x / y rows
  // [expert_offsets[e], expert_offsets[e + 1]); m is then the most tokens one expert may get.
  const int32_t* expert_offsets = nullptr;
  int64_t expert_w_bytes = 0, expert_scale_bytes = 0;
};

// 16 bytes that are read once: skip L1 so the activations stay there.
__device__ __forceinline__ uint4 load_stream(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float2 half2_bits_to_float2(uint32_t bits) {
  __half2_raw raw;
  raw.x = uint16_t(bits & 0xffffu);
  raw.y = uint16_t(bits >> 16);
  return __half22float2(__half2(raw));
}

// Four e4m3 codes (byte i = element i) -> their exact values.
__device__ __forceinline__ void e4m3x4_to_float(uint32_t v, float* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  const __half2_raw lo_raw =
      __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v & 0xffffu), __NV_E4M3);
  const __half2_raw hi_raw = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v >> 16), __NV_E4M3);
  const float2 lo = __half22float2(__half2(lo_raw));
  const float2 hi = __half22float2(__half2(hi_raw));
  out[0] = lo.x;
  out[1] = lo.y;
  out[2] = hi.x;
  out[3] = hi.y;
#else
  // Portable: e4m3 bits placed in an f16 are value · 2^-8 (subnormals included); × 2^8 is
  // exact in f16. Code 0x7f (NaN) decodes as 480; the quantizers never produce it.
  const __half2 k256 = __floats2half2_rn(256.0f, 256.0f);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint32_t s = v >> (8 * i);  // bytes i and i + 2 in the two halves
    const uint32_t h = ((s & 0x007f007fu) << 7) | ((s & 0x00800080u) << 8);
    __half2_raw raw;
    raw.x = uint16_t(h & 0xffffu);
    raw.y = uint16_t(h >> 16);
    const float2 f = __half22float2(__hmul2(__half2(raw), k256));
    out[i] = f.x;
    out[i + 2] = f.y;
  }
#endif
}

// Eight e2m1 codes (nibble i = element i) -> their values times 2^-14, exactly: the three
// magnitude bits placed at f16 bits 9..11 read as value · 2^-14, the subnormal 0.5 included.
inline constexpr float kE2m1Unfold = 16384.0f;  // 2^14, folded into the weight scale
__device__ __forceinline__ void e2m1x8_to_float_folded(uint32_t v, float* out) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t s = v >> (4 * i);  // nibbles i and i + 4 at the bottom of each half
    const float2 f = half2_bits_to_float2(((s & 0x00070007u) << 9) | ((s & 0x00080008u) << 12));
    out[i] = f.x;
    out[i + 4] = f.y;
  }
}

__device__ __forceinline__ float load_scale(const void* scales, ScaleStorage storage,
                                            int64_t index) {
  const auto* bytes = static_cast<const uint8_t*>(scales);
  switch (storage) {
    case ScaleStorage::kUe8m0:
      return ue8m0_to_float(__ldg(bytes + index));
    case ScaleStorage::kE4m3:
      return __half2float(__half(__nv_cvt_fp8_to_halfraw(__ldg(bytes + index), __NV_E4M3)));
    default:
      return __ldg(static_cast<const float*>(scales) + index);
  }
}

// ---- weight formats: 16 bytes -> kElems floats, and the scale of the chunk ---------------

struct Fp8Weight {
  static constexpr int kElems = 16;
  static constexpr int kScaleBlocks = 1;  // weight scales per chunk
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) {
    e4m3x4_to_float(raw.x, w);
    e4m3x4_to_float(raw.y, w + 4);
    e4m3x4_to_float(raw.z, w + 8);
    e4m3x4_to_float(raw.w, w + 12);
  }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, (row >> 7) * p.w_scale_cols + (k0 >> 7));
  }
};

struct Fp4Weight {
  static constexpr int kElems = 32;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) {
    e2m1x8_to_float_folded(raw.x, w);
    e2m1x8_to_float_folded(raw.y, w + 8);
    e2m1x8_to_float_folded(raw.z, w + 16);
    e2m1x8_to_float_folded(raw.w, w + 24);
  }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, row * p.w_scale_cols + (k0 >> 5)) *
           kE2m1Unfold;
  }
};

// NVFP4: the same e2m1 codes, an e4m3 scale per 16 inputs (two per chunk), and the global scale
// applied to the finished dot product.
struct NvFp4Weight {
  static constexpr int kElems = 32;
  static constexpr int kScaleBlocks = 2;
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) { Fp4Weight::decode(raw, w); }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, row * p.w_scale_cols + (k0 >> 4)) *
           kE2m1Unfold;
  }
};

struct Bf16Weight {
  static constexpr int kElems = 8;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = false;
  __device__ static void decode(const uint4& raw, float* w) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = __uint_as_float(words[i] << 16);
      w[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
  __device__ static float scale(const StreamParams&, int64_t, int64_t) {
    return 1.0f;
  }
};

struct F32Weight {
  static constexpr int kElems = 4;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = false;
  __device__ static void decode(const uint4& raw, float* w) {
    w[0] = __uint_as_float(raw.x);
    w[1] = __uint_as_float(raw.y);
    w[2] = __uint_as_float(raw.z);
    w[3] = __uint_as_float(raw.w);
  }
  __device__ static float scale(const StreamParams&, int64_t, int64_t) { return 1.0f; }
};

// ---- activation formats: kElems values of one token at column k --------------------------

// e4m3 codes with one power-of-two scale per 128 columns (the FP8 activation quantizer).
struct Fp8Activations {
  static constexpr bool kScaled = true;
  template <int kElems>
  __device__ static void load(const StreamParams& p, int64_t offset, float* a) {
    const uint8_t* src = static_cast<const uint8_t*>(p.x) + offset;
#pragma unroll
    for (int i = 0; i < kElems / 16; ++i) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(src) + i);
      e4m3x4_to_float(v.x, a + 16 * i);
      e4m3x4_to_float(v.y, a + 16 * i + 4);
      e4m3x4_to_float(v.z, a + 16 * i + 8);
      e4m3x4_to_float(v.w, a + 16 * i + 12);
    }
  }
  __device__ static float scale(const StreamParams& p, int64_t offset) {
    return __ldg(p.x_scales + (offset >> 7));
  }
};

// Plain fp32 activations.
struct F32Activations {
  static constexpr bool kScaled = false;
  template <int kElems>
  __device__ static void load(const StreamParams& p, int64_t offset, float* a) {
    const float4* src = reinterpret_cast<const float4*>(static_cast<const float*>(p.x) + offset);
#pragma unroll
    for (int i = 0; i < kElems / 4; ++i) {
      const float4 v = __ldg(src + i);
      a[4 * i] = v.x;
      a[4 * i + 1] = v.y;
      a[4 * i + 2] = v.z;
      a[4 * i + 3] = v.w;
    }
  }
  __device__ static float scale(const StreamParams&, int64_t) {
    return 1.0f;
  }
};

// ---- the kernel ------------------------------------------------------------------------

// The weight bytes and scales of U steps of R rows: chunks c, c + 32, ..., c + 32·(U-1).
template <int U, int R, int B>
struct Stage {
  uint4 raw[U][R];
  float scale[U][R][B];  // B weight scale blocks per chunk
};

// Loads a stage (zeros past the end of the row, without touching memory). The scales are
// read here too, so that their latency overlaps the weights' instead of following it.
template <class W, int U, int R>
__device__ __forceinline__ void load_stage(Stage<U, R, W::kScaleBlocks>& s, const StreamParams& p,
                                           const uint8_t* const (&wrow)[R],
                                           const int64_t (&row_of)[R], int64_t c, int64_t chunks) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t chunk = c + 32 * u;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      constexpr int kBlock = W::kElems / W::kScaleBlocks;
      if (chunk < chunks) {
        s.raw[u][r] = load_stream(wrow[r] + chunk * 16);
#pragma unroll
        for (int b = 0; b < W::kScaleBlocks; ++b) {
          s.scale[u][r][b] = W::scale(p, row_of[r], chunk * W::kElems + b * kBlock);
        }
      } else {
        s.raw[u][r] = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
        for (int b = 0; b < W::kScaleBlocks; ++b) s.scale[u][r][b] = 0.0f;
      }
    }
  }
}

// R rows from row0 times MT tokens from tok0 (of the expert whose rows start at first_token).
// kPrefetch: the next U chunks of every row are loaded before the current ones are used
// (register double buffering).
template <class W, class A, int R, int MT, int U, bool kPrefetch>
__device__ __forceinline__ void stream_rows(const StreamParams& p, const uint8_t* w_base,
                                            int64_t row0, int64_t tok0, int64_t first_token) {
  constexpr int E = W::kElems;
  constexpr bool kScaled = W::kScaled || A::kScaled;
  const int lane = int(threadIdx.x & 31u);
  const uint8_t* wrow[R];
  int64_t row_of[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    row_of[r] = row0 + r < p.rows ? row0 + r : p.rows - 1;  // clamped: loads stay in bounds
    wrow[r] = w_base + row_of[r] * p.w_row_bytes;
  }
  // Every row of the warp is in the same input group (the host picks R to divide the group).
  const int64_t x_base = (row0 / p.rows_per_group) * p.cols;
  int64_t x_token[MT];
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    x_token[t] = (first_token + (tok0 + t < p.m ? tok0 + t : p.m - 1)) * p.x_row_stride + x_base;
  }

  float acc[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < MT; ++t) acc[r][t] = 0.0f;
  }

  const int64_t chunks = p.w_row_bytes / 16;
  Stage<U, R, W::kScaleBlocks> cur;
  if constexpr (kPrefetch) load_stage<W>(cur, p, wrow, row_of, lane, chunks);
  for (int64_t c = lane; c < chunks; c += 32 * U) {
    Stage<U, R, W::kScaleBlocks> next;
    if constexpr (kPrefetch) {
      load_stage<W>(next, p, wrow, row_of, c + 32 * U, chunks);  // in flight during the math
    } else {
      load_stage<W>(cur, p, wrow, row_of, c, chunks);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t chunk = c + 32 * u;
      if (chunk >= chunks) break;
      const int64_t k0 = chunk * E;
      float w[R][E];
#pragma unroll
      for (int r = 0; r < R; ++r) W::decode(cur.raw[u][r], w[r]);
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        float a[E];
        A::template load<E>(p, x_token[t] + k0, a);
        if constexpr (kScaled) {
          const float a_scale = A::scale(p, x_token[t] + k0);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            constexpr int kBlock = E / W::kScaleBlocks;
#pragma unroll
            for (int b = 0; b < W::kScaleBlocks; ++b) {
              float partial = a[b * kBlock] * w[r][b * kBlock];
#pragma unroll
              for (int e = b * kBlock + 1; e < (b + 1) * kBlock; ++e) {
                partial = fmaf(a[e], w[r][e], partial);
              }
              acc[r][t] = fmaf(partial, a_scale * cur.scale[u][r][b], acc[r][t]);
            }
          }
        } else {
#pragma unroll
          for (int r = 0; r < R; ++r) {
#pragma unroll
            for (int e = 0; e < E; ++e) acc[r][t] = fmaf(a[e], w[r][e], acc[r][t]);
          }
        }
      }
    }
    if constexpr (kPrefetch) cur = next;
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
      const int64_t row = row0 + r, token = tok0 + t;
      if (lane == ((r * MT + t) & 31) && row < p.rows && token < p.m) {
        // NVFP4, as cpu::linear: the finished sum, then the global scale.
        if (p.w_row_scales) v *= __ldg(p.w_row_scales + row);
        const int64_t at = (first_token + token) * p.rows + row;
        if (p.y_f32) p.y_f32[at] = v;
        if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(v);
      }
    }
  }
}

// The weight's (or grid.z's expert's) rows for token tile grid.y of MT tokens.
template <class W, class A, int R, int MT, int U, bool kPrefetch>
__global__ void __launch_bounds__(kThreadsPerBlock)
    weight_stream_kernel(const __grid_constant__ StreamParams params) {
  const int64_t row0 = (int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * R;
  if (row0 >= params.rows) return;
  stream_rows<W, A, R, MT, U, kPrefetch>(params, params.w, row0, int64_t(blockIdx.y) * MT, 0);
}

// Routed experts: CTA (x, y) takes rows x and the tiles y, y + gridDim.y, ... of a list from
// plan_expert_tiles (expert · 65536 + tile; tile t = the expert's tokens [16t, 16t + 16)). Each
// tile runs the narrowest token width that covers the tokens it has, so an expert with one or
// two tokens (the usual case at decode) does one or two tokens' arithmetic per weight element,
// while a tile stays 16 wide for hot experts (no weight re-reads). The narrow list (1-4 tokens)
// and the wide one (5-16) are separate launches because the register count of the widest
// variant in a kernel caps the occupancy of all of them; kMost = 1 is the narrow launch of a
// step where no expert can get two tokens (56 registers for FP4, against 126 for 1-4).
template <class W, class A, int R, class Small, class Medium, class Large, int kMost>
__global__ void __launch_bounds__(kThreadsPerBlock)
    expert_stream_kernel(const __grid_constant__ StreamParams params,
                         const int32_t* __restrict__ tiles, const int32_t* __restrict__ count) {
  const int64_t row0 = (int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * R;
  if (row0 >= params.rows) return;
  const int32_t n_tiles = *count;
  for (int32_t y = int32_t(blockIdx.y); y < n_tiles; y += int32_t(gridDim.y)) {
    const int32_t entry = tiles[y];
    const int64_t e = entry >> 16, tok0 = int64_t(entry & 0xffff) * 16;
    StreamParams p = params;
    const int64_t first_token = params.expert_offsets[e];
    p.m = params.expert_offsets[e + 1] - first_token;
    const int64_t here = min(p.m - tok0, int64_t(16));
    // The expert's weight base is computed from params, not by moving p.w: with p.w moved, the
    // weight loads read expert 0's bytes (nvcc 13.0, sm_90a; tests/cuda/gemm/expert_gemm_test).
    const uint8_t* w_base = params.w + e * params.expert_w_bytes;
    p.w_scales = static_cast<const uint8_t*>(params.w_scales) + e * params.expert_scale_bytes;
    if (params.w_row_scales) p.w_row_scales = params.w_row_scales + e * params.rows;
    if (kMost == 1 || here == 1) {
      stream_rows<W, A, R, 1, Small::U, Small::kPrefetch>(p, w_base, row0, tok0, first_token);
    } else if (kMost <= 4 && here == 2) {
      stream_rows<W, A, R, 2, Medium::U, Medium::kPrefetch>(p, w_base, row0, tok0, first_token);
    } else if (kMost <= 4) {
      stream_rows<W, A, R, 4, Medium::U, Medium::kPrefetch>(p, w_base, row0, tok0, first_token);
    } else if (here <= 8) {
      stream_rows<W, A, R, 8, Large::U, Large::kPrefetch>(p, w_base, row0, tok0, first_token);
    } else {
      stream_rows<W, A, R, 16, Large::U, Large::kPrefetch>(p, w_base, row0, tok0, first_token);
    }
  }
}

// One launch of a fixed configuration: grid.x over row groups of R·kWarpsPerBlock, grid.y over
// token tiles of MT.
template <class W, class A, int R, int MT, int U, bool kPrefetch>
void launch_tile(const StreamParams& p, cudaStream_t stream) {
  const int64_t rows_per_block = int64_t(R) * kWarpsPerBlock;
  const dim3 grid(unsigned((p.rows + rows_per_block - 1) / rows_per_block),
                  unsigned((p.m + MT - 1) / MT));
  weight_stream_kernel<W, A, R, MT, U, kPrefetch><<<grid, kThreadsPerBlock, 0, stream>>>(p);
}

// Rows per warp, steps in flight and double buffering for one token-tile width.
template <int R_, int U_, bool kPrefetch_>
struct TileConfig {
  static constexpr int R = R_;
  static constexpr int U = U_;
  static constexpr bool kPrefetch = kPrefetch_;
};

// Picks the token tile MT (the next power of two >= m, up to 16; larger m runs in tiles of 16
// along grid.y) and its configuration: Small for m = 1, Medium for m = 2..4, Large above.
// kGrouped: the warp's R rows must share an input group; where R does not divide the group
// size, one row per warp.
template <class W, class A, class Small, class Medium, class Large, bool kGrouped>
void launch_weight_stream(const StreamParams& p, cudaStream_t stream) {
  const auto launch = [&](auto mt, auto config) {
    constexpr int MT = decltype(mt)::value;
    using C = decltype(config);
    if constexpr (kGrouped && C::R > 1) {
      if (p.rows_per_group % C::R != 0) {
        return launch_tile<W, A, 1, MT, 4, false>(p, stream);
      }
    }
    launch_tile<W, A, C::R, MT, C::U, C::kPrefetch>(p, stream);
  };
  if (p.m == 1) {
    launch(std::integral_constant<int, 1>{}, Small{});
  } else if (p.m == 2) {
    launch(std::integral_constant<int, 2>{}, Medium{});
  } else if (p.m <= 4) {
    launch(std::integral_constant<int, 4>{}, Medium{});
  } else if (p.m <= 8) {
    launch(std::integral_constant<int, 8>{}, Large{});
  } else {
    launch(std::integral_constant<int, 16>{}, Large{});
  }
}

// Measured on H200 at 4096x4096 FP8 / 2048x4096 FP4 / 4096x4096 bf16 (config_sweep_test);
// Medium and Large keep the registers below the spill point.
template <class W, class A>
struct Tuned;
template <>
struct Tuned<Fp8Weight, Fp8Activations> {
  using Small = TileConfig<2, 2, true>;
  using Medium = TileConfig<4, 1, true>;
  using Large = TileConfig<4, 1, false>;
};
template <>
struct Tuned<Fp4Weight, Fp8Activations> {
  using Small = TileConfig<1, 2, true>;
  using Medium = TileConfig<1, 2, true>;
  using Large = TileConfig<2, 1, false>;
};
template <>
struct Tuned<NvFp4Weight, Fp8Activations> : Tuned<Fp4Weight, Fp8Activations> {};
template <>
struct Tuned<Bf16Weight, F32Activations> {
  using Small = TileConfig<4, 2, true>;
  using Medium = TileConfig<4, 2, true>;
  using Large = TileConfig<4, 1, false>;
};
template <>
struct Tuned<F32Weight, F32Activations> : Tuned<Bf16Weight, F32Activations> {};
// FP8/FP4 weights with fp32 activations (the exact product, e.g. a grouped wo_a kept in FP8):
// 16 or 32 fp32 activations per chunk and token; one row per warp keeps them in registers.
template <>
struct Tuned<Fp8Weight, F32Activations> {
  using Small = TileConfig<1, 2, true>;
  using Medium = TileConfig<1, 2, false>;
  using Large = TileConfig<1, 1, false>;
};
template <>
struct Tuned<Fp4Weight, F32Activations> : Tuned<Fp8Weight, F32Activations> {};
template <>
struct Tuned<NvFp4Weight, F32Activations> : Tuned<Fp8Weight, F32Activations> {};

template <class W, class A, bool kGrouped = false>
void launch_tuned(const StreamParams& p, cudaStream_t stream) {
  using T = Tuned<W, A>;
  launch_weight_stream<W, A, typename T::Small, typename T::Medium, typename T::Large, kGrouped>(
      p, stream);
}

// The routed experts (p.expert_offsets set, p.m the most tokens one expert may get) over the
// tile lists of plan_expert_tiles: the narrow list with Medium's rows per warp (Small's, and
// the 1-token variant only, when no expert can get two tokens), the wide one with Large's
// where an expert can get more than 4. At most kTileSlots CTAs per row group; each loops over
// the list. Measured on the H200 (whole step, batch 64, grid over every (expert, tile) pair
// before the lists): a third launch for the 1-token tiles at batch > 1 was slower (Flash 35.8
// vs 32.3 ms).
inline constexpr int64_t kTileSlots = 128;
template <class W, class A>
void launch_tuned_experts(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream) {
  using T = Tuned<W, A>;
  const auto launch = [&](auto rows_per_warp, auto most, const int32_t* list, int64_t capacity,
                          const int32_t* count) {
    constexpr int R = decltype(rows_per_warp)::value;
    const int64_t rows_per_block = int64_t(R) * kWarpsPerBlock;
    const dim3 grid(unsigned((p.rows + rows_per_block - 1) / rows_per_block),
                    unsigned(std::min(capacity, kTileSlots)));
    expert_stream_kernel<W, A, R, typename T::Small, typename T::Medium, typename T::Large,
                         decltype(most)::value>
        <<<grid, kThreadsPerBlock, 0, stream>>>(p, list, count);
  };
  using std::integral_constant;
  if (p.m == 1) {
    launch(integral_constant<int, T::Small::R>{}, integral_constant<int, 1>{}, tiles.narrow,
           tiles.narrow_capacity, tiles.counts);
    return;
  }
  launch(integral_constant<int, T::Medium::R>{}, integral_constant<int, 4>{}, tiles.narrow,
         tiles.narrow_capacity, tiles.counts);
  if (p.m > 4) {
    launch(integral_constant<int, T::Large::R>{}, integral_constant<int, 16>{}, tiles.wide,
           tiles.wide_capacity, tiles.counts + 1);
  }
}

// ---- host side ---------------------------------------------------------------------------

inline void check_aligned(const void* p, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fail("{} is not 16-byte aligned", what);
}

// The weight and output fields of the parameters; fails on layouts the kernel cannot stream.
inline StreamParams stream_params(const DeviceLinearView& w, const LinearOutput& y, int64_t m) {
  StreamParams p;
  p.w = static_cast<const uint8_t*>(w.values);
  p.rows = w.rows;
  p.cols = w.cols;
  p.m = m;
  p.y_f32 = y.f32;
  p.y_bf16 = y.bf16;
  switch (w.format) {
    case WeightFormat::kF32:
      p.w_row_bytes = w.cols * 4;
      break;
    case WeightFormat::kBF16:
      p.w_row_bytes = w.cols * 2;
      break;
    case WeightFormat::kFp8:
      p.w_row_bytes = w.cols;
      p.w_scale_cols = (w.cols + 127) / 128;
      break;
    case WeightFormat::kFp4:
      p.w_row_bytes = w.cols / 2;
      p.w_scale_cols = w.cols / 32;
      break;
    case WeightFormat::kNvFp4:
      p.w_row_bytes = w.cols / 2;
      p.w_scale_cols = w.cols / 16;
      if (!w.row_scales) fail("linear GEMM: an NVFP4 weight without its row (global) scales");
      p.w_row_scales = w.row_scales;
      break;
  }
  const bool e2m1 = w.format == WeightFormat::kFp4 || w.format == WeightFormat::kNvFp4;
  if (p.w_row_bytes % 16 != 0 || (e2m1 && w.cols % 32 != 0)) {
    fail("linear GEMM: a {} weight row of {} inputs is not a whole number of 16-byte chunks",
         weight_format_name(w.format), w.cols);
  }
  check_aligned(w.values, "linear GEMM: weight values");
  if (w.format == WeightFormat::kFp8 || e2m1) {
    if (w.scale_storage == ScaleStorage::kNone || !w.scales) {
      fail("linear GEMM: the {} weight has no scales", weight_format_name(w.format));
    }
    if ((w.format == WeightFormat::kNvFp4) != (w.scale_storage == ScaleStorage::kE4m3)) {
      fail("linear GEMM: a {} weight with e4m3 scales, or an NVFP4 one without",
           weight_format_name(w.format));
    }
    p.w_scales = w.scales;
    p.w_scale_storage = w.scale_storage;
  }
  return p;
}

}  // namespace dsv4::cuda::gemm_detail
