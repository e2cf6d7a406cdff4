// The weight-streaming GEMM shared by the linear-layer kernels (internal to the gemm domain):
// y[m, n] = Σ_k x[m, k] · W[n, k] for a weight kept in its checkpoint format.
//
// Structure: each warp owns R consecutive output rows and one tile of MT tokens (grid.y). A lane
// reads 16 bytes of each of its R weight rows per step (one "chunk": 16 e4m3 codes, 32 packed
// e2m1 codes, 8 bf16 or 4 f32 values; the formats are in weight_stream_formats.cuh), U steps
// at a time, with the chunks' weight scales, through the non-allocating read-only path; at
// small m the next U steps are loaded before the current ones are used (register double
// buffering). The warp covers 512 consecutive bytes of a row per step. The chunk's activations
// (the same for all R rows, read from L1) are decoded once per token, and each (row, token)
// pair gets the partial dot product Σ a·w of each weight scale block in the chunk (one; two
// for NVFP4's 16-input blocks) in fp32, added times s_x · s_w: a chunk never straddles an
// activation block (16, 32 | 128), so this is the reference's per-block rule with only the
// order of the fp32 additions changed. Lanes reduce with shuffles at the end; NVFP4's global
// scale then multiplies the sum, as in cpu::linear.
//
// For m > 4 this is FMA-bound (m FMAs per weight element). MXFP4 routed experts on sm_90 run
// on tensor cores instead (fp4_expert_gemm.h), and so do dense FP8 and bf16 linears
// (linear_wgmma.h); this kernel serves the other formats, f32 weights, NVFP4 experts and GPUs
// without sm_90 code.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/weight_stream_formats.cuh"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {

inline constexpr int kWarpsPerBlock = 4;
inline constexpr int kThreadsPerBlock = 32 * kWarpsPerBlock;

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

// The weight's rows for token tile grid.y of MT tokens.
template <class W, class A, int R, int MT, int U, bool kPrefetch>
__global__ void __launch_bounds__(kThreadsPerBlock)
    weight_stream_kernel(const __grid_constant__ StreamParams params) {
  wait_for_previous_kernel();
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
    expert_stream_kernel(const __grid_constant__ StreamParams params, const int32_t* tiles,
                         const int32_t* count) {
  wait_for_previous_kernel();
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
  launch_dependent(weight_stream_kernel<W, A, R, MT, U, kPrefetch>, grid, kThreadsPerBlock, 0,
                   stream, p);
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
// where an expert can get more than 4. At most kExpertTileSlots CTAs per row group; each loops over
// the list. Measured on the H200 (whole step, batch 64, grid over every (expert, tile) pair
// before the lists): a third launch for the 1-token tiles at batch > 1 was slower (Flash 35.8
// vs 32.3 ms).
template <class W, class A>
void launch_tuned_experts(const StreamParams& p, const ExpertTiles& tiles, cudaStream_t stream) {
  using T = Tuned<W, A>;
  const auto launch = [&](auto rows_per_warp, auto most, const int32_t* list, int64_t capacity,
                          const int32_t* count) {
    constexpr int R = decltype(rows_per_warp)::value;
    const int64_t rows_per_block = int64_t(R) * kWarpsPerBlock;
    const dim3 grid(unsigned((p.rows + rows_per_block - 1) / rows_per_block),
                    unsigned(std::min(capacity, kExpertTileSlots)));
    launch_dependent(expert_stream_kernel<W, A, R, typename T::Small, typename T::Medium,
                                          typename T::Large, decltype(most)::value>,
                     grid, kThreadsPerBlock, 0, stream, p, list, count);
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
  if (block_scaled(w.format)) {
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
