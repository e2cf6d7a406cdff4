// Indexer scores: one CTA per (token, run of tiles of 128 keys), 8 warps. Each tile's keys are
// gathered through the block table and decoded from FP4 to bf16 in shared memory (exact); q·k
// runs on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators; exact for FP4-valued inputs).
// The per-head terms bf16(relu(bf16(q·k)) · w) go to shared memory and one thread per key sums
// them in head order, as the CPU does, so the bf16 scores are bit-identical. A CTA loads Q once
// and looks up and loads the next tile's keys while it multiplies the current one; the host
// sizes the runs for about four waves (one tile a CTA at short contexts, where tiles run side by
// side). Measured (H200): one token at 250K keys ~100 us (latency-bound); a Flash decode step
// of 4 layers at batch 64 and 256K context 7.64 -> 7.31 ms with the runs (bench/RESULTS.md).
// Next: the sequential head sum (a fixed-order tree would need the CPU to use the same order),
// several tokens per CTA to reuse each key tile (prefill), FP8 wgmma.
#include <algorithm>
#include <mutex>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTileKeys = 16 * kWarps;  // keys per tile: 16 per warp
constexpr int kMaxHeads = 64;
constexpr int kMaxDim = 256;
constexpr int kPad = 8;
constexpr int kTermStride = kMaxHeads + 1;
constexpr int kLoadsPerThread = kTileKeys * (kMaxDim / 8) / kThreads;

size_t shared_bytes(int dim) {
  const size_t ld = size_t(dim + kPad);
  return sizeof(uint16_t) * (kMaxHeads + kTileKeys) * ld +
         sizeof(float) * (kTileKeys * kTermStride + kMaxHeads) + sizeof(void*) * 2 * kTileKeys;
}

// A tile's key codes and scale codes as loaded: thread tid's loads i = tid + it · kThreads of
// the tile's (key, 8-dim unit) pairs (rows: the tile's key rows, null past the visible keys).
struct TileCodes {
  uint32_t packed[kLoadsPerThread];
  uint8_t scale_code[kLoadsPerThread];
};

__device__ __forceinline__ void load_tile_codes(const uint8_t* const* rows, int dim, int tid,
                                                TileCodes& c) {
  const int units = dim / 8, total = kTileKeys * units;
#pragma unroll
  for (int it = 0; it < kLoadsPerThread; ++it) {
    const int i = tid + it * kThreads;
    c.packed[it] = 0u;
    c.scale_code[it] = 127;
    const uint8_t* src = i < total ? rows[i / units] : nullptr;
    if (src) {
      const int u = i % units;
      c.packed[it] = *reinterpret_cast<const uint32_t*>(src + u * 4);
      c.scale_code[it] = src[dim / 2 + u / 4];
    }
  }
}

// Tiles [blockIdx.y · tiles_per_cta, + tiles_per_cta) of token blockIdx.x's visible keys: Q and
// the weights are loaded once, and each tile's key rows are looked up and loaded while the tile
// before it is multiplied.
__global__ void __launch_bounds__(kThreads)
    indexer_scores_kernel(const IndexerArgs a, int32_t tiles_per_cta) {
  wait_for_previous_kernel();
  extern __shared__ __align__(16) uint8_t smem[];
  const int dim = a.dim, ld = dim + kPad, units = dim / 8;
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);                   // [kMaxHeads][ld]
  uint16_t* k_s = q_s + kMaxHeads * ld;                                // [kTileKeys][ld]
  float* terms = reinterpret_cast<float*>(k_s + kTileKeys * ld);       // [kTileKeys][kTermStride]
  float* w_s = terms + kTileKeys * kTermStride;                        // [kMaxHeads]
  auto** rows_s = reinterpret_cast<const uint8_t**>(w_s + kMaxHeads);  // [2][kTileKeys]

  const int32_t t = int32_t(blockIdx.x);
  const int32_t slot = a.batch.slot[t];
  const int32_t visible = min((a.batch.position[t] + 1) / a.ratio, a.max_visible);
  const int32_t first_tile = int32_t(blockIdx.y) * tiles_per_cta;
  if (first_tile * kTileKeys >= visible) return;
  const int32_t end_tile = min(first_tile + tiles_per_cta, (visible + kTileKeys - 1) / kTileKeys);
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int heads = a.heads, m_tiles = (heads + 15) / 16;
  const auto look_up = [&](int32_t tile) -> const uint8_t* {
    const int32_t key = tile * kTileKeys + tid;
    return tid < kTileKeys && key < visible ? a.keys.row(slot, key) : nullptr;
  };

  for (int i = tid; i < kMaxHeads * units; i += kThreads) {
    const int h = i / units, u = i % units;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (h < heads)
      v = *reinterpret_cast<const uint4*>(a.q + (int64_t(t) * heads + h) * dim + u * 8);
    *reinterpret_cast<uint4*>(q_s + h * ld + u * 8) = v;
  }
  if (tid < kMaxHeads) {
    w_s[tid] = tid < heads ? bf16_bits_to_float(a.weights[int64_t(t) * heads + tid]) : 0.0f;
  }
  if (tid < kTileKeys) rows_s[tid] = look_up(first_tile);
  __syncthreads();
  TileCodes codes;
  load_tile_codes(rows_s, dim, tid, codes);

  const uint16_t* b_ptr =
      k_s + (16 * warp + (lane >> 4) * 8 + (lane & 7)) * ld + ((lane >> 3) & 1) * 8;
  for (int32_t tile = first_tile; tile < end_tile; ++tile) {
    const int which = (tile - first_tile) & 1;
    const bool has_next = tile + 1 < end_tile;
    // The next tile's rows: the page-table loads overlap this tile's decoding.
    const uint8_t* next_row = has_next ? look_up(tile + 1) : nullptr;
#pragma unroll
    for (int it = 0; it < kLoadsPerThread; ++it) {
      const int i = tid + it * kThreads;
      if (i < kTileKeys * units) {
        const int r = i / units, u = i % units;
        *reinterpret_cast<uint4*>(k_s + r * ld + u * 8) =
            dequant_e2m1x8(codes.packed[it], ue8m0_to_float(codes.scale_code[it]));
      }
    }
    if (tid < kTileKeys) rows_s[(which ^ 1) * kTileKeys + tid] = next_row;
    __syncthreads();  // the tile in k_s; the next tile's rows
    TileCodes next_codes;
    if (has_next) {
      load_tile_codes(rows_s + (which ^ 1) * kTileKeys, dim, tid, next_codes);
    } else {
#pragma unroll
      for (int it = 0; it < kLoadsPerThread; ++it) {
        next_codes.packed[it] = 0u;
        next_codes.scale_code[it] = 127;
      }
    }

    float acc[4][2][4];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[m][j][e] = 0.0f;
      }
    }
    for (int kk = 0; kk < dim; kk += 16) {
      uint32_t bf[4];
      ldmatrix_x4(bf, b_ptr + kk);
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        if (m < m_tiles) {
          uint32_t af[4];
          ldmatrix_x4(af, q_s + (m * 16 + (lane & 15)) * ld + kk + (lane >> 4) * 8);
          mma_bf16_16816(acc[m][0], af, bf[0], bf[1]);
          mma_bf16_16816(acc[m][1], af, bf[2], bf[3]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      if (m >= m_tiles) continue;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int head = m * 16 + (lane >> 2) + (e >= 2 ? 8 : 0);
          const int key = 16 * warp + 8 * j + (lane & 3) * 2 + (e & 1);
          const float logit = round_bf16(acc[m][j][e]);
          terms[key * kTermStride + head] = round_bf16(__fmul_rn(fmaxf(logit, 0.0f), w_s[head]));
        }
      }
    }
    __syncthreads();  // the terms; k_s and the terms are rewritten only after the sums below
    const int32_t n = min(kTileKeys, visible - tile * kTileKeys);
    if (tid < n) {
      float score = 0.0f;
      for (int h = 0; h < heads; ++h) score = __fadd_rn(score, terms[tid * kTermStride + h]);
      a.scores[int64_t(t) * a.score_stride + tile * kTileKeys + tid] = float_to_bf16_bits(score);
    }
    codes = next_codes;
  }
}

}  // namespace

void check_indexer_args(const IndexerArgs& a) {
  const auto key_bytes = int32_t(IndexKeyFormat{size_t(a.dim > 0 ? a.dim : 0)}.bytes());
  if (a.heads <= 0 || a.heads > kMaxHeads || a.dim <= 0 || a.dim % 32 != 0 || a.dim > kMaxDim ||
      a.ratio <= 0 || a.topk <= 0 || a.topk > kMaxIndexerTopk || a.max_visible < 0 ||
      a.score_stride % 8 != 0 || a.score_stride < a.max_visible || !a.q || !a.weights ||
      !a.scores || !a.indices || a.keys.row_bytes != key_bytes) {
    fail(
        "indexer: bad arguments (heads {} of at most {}, dim {} of at most {}, ratio {}, topk {} "
        "of at most {}, max_visible {}, score_stride {}, key rows of {} bytes)",
        a.heads, kMaxHeads, a.dim, kMaxDim, a.ratio, a.topk, kMaxIndexerTopk, a.max_visible,
        a.score_stride, a.keys.row_bytes);
  }
}

void indexer_scores(const IndexerArgs& a, cudaStream_t stream) {
  check_indexer_args(a);
  if (a.batch.tokens <= 0 || a.max_visible == 0) return;
  static std::once_flag configured;
  std::call_once(configured, [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(indexer_scores_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(shared_bytes(kMaxDim))));
  });
  // Enough tiles a CTA to amortise its Q load, few enough for ~4 waves of two CTAs an SM.
  const int64_t tiles_per_token = (a.max_visible + kTileKeys - 1) / kTileKeys;
  const int64_t resident = 2 * int64_t(current_device_traits().sm_count);
  const auto tiles_per_cta = int32_t(std::clamp<int64_t>(
      (int64_t(a.batch.tokens) * tiles_per_token + 4 * resident - 1) / (4 * resident), 1, 64));
  const dim3 grid(unsigned(a.batch.tokens),
                  unsigned((tiles_per_token + tiles_per_cta - 1) / tiles_per_cta));
  launch_dependent(indexer_scores_kernel, grid, kThreads, shared_bytes(a.dim), stream, a,
                   tiles_per_cta);
}

}  // namespace dsv4::cuda
