// Indexer scores: one CTA per (token, tile of 128 keys), 8 warps. The tile's keys are gathered
// through the block table and decoded from FP4 to bf16 in shared memory (exact); q·k runs on
// bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators; exact for FP4-valued inputs). The
// per-head terms bf16(relu(bf16(q·k)) · w) go to shared memory and one thread per key sums
// them in head order, as the CPU does, so the bf16 scores are bit-identical.
// Measured (H200, one token, 250K keys = 17 MB): ~100 us (0.17 TB/s), latency-bound like the
// attention gathers; at 4K context (1024 keys) one CTA looping over 1024 keys took 76 us, so
// a token's tiles now run side by side. Next optimisations: the sequential head sum (a
// fixed-order tree would need the CPU to use the same order), several tokens per CTA to reuse
// each key tile (prefill), FP8 wgmma.
#include <mutex>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/runtime/check.h"
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
         sizeof(float) * (kTileKeys * kTermStride + kMaxHeads) + sizeof(void*) * kTileKeys;
}

__global__ void __launch_bounds__(kThreads) indexer_scores_kernel(const IndexerArgs a) {
  wait_for_previous_kernel();
  extern __shared__ __align__(16) uint8_t smem[];
  const int dim = a.dim, ld = dim + kPad, units = dim / 8;
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);                   // [kMaxHeads][ld]
  uint16_t* k_s = q_s + kMaxHeads * ld;                                // [kTileKeys][ld]
  float* terms = reinterpret_cast<float*>(k_s + kTileKeys * ld);       // [kTileKeys][kTermStride]
  float* w_s = terms + kTileKeys * kTermStride;                        // [kMaxHeads]
  auto** rows_s = reinterpret_cast<const uint8_t**>(w_s + kMaxHeads);  // [kTileKeys]

  const int32_t t = int32_t(blockIdx.x);
  const int32_t slot = a.batch.slot[t];
  const int32_t visible = min((a.batch.position[t] + 1) / a.ratio, a.max_visible);
  const int32_t tile = int32_t(blockIdx.y) * kTileKeys;
  if (tile >= visible) return;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int heads = a.heads, m_tiles = (heads + 15) / 16;

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

  const uint16_t* b_ptr =
      k_s + (16 * warp + (lane >> 4) * 8 + (lane & 7)) * ld + ((lane >> 3) & 1) * 8;
  const int n = min(kTileKeys, visible - tile);
  if (tid < kTileKeys) rows_s[tid] = tid < n ? a.keys.row(slot, tile + tid) : nullptr;
  __syncthreads();
  // All loads of the tile in flight before decoding (16 per thread at dim 256).
  const int total = kTileKeys * units;
  uint32_t packed[kLoadsPerThread];
  uint8_t scale_code[kLoadsPerThread];
#pragma unroll
  for (int it = 0; it < kLoadsPerThread; ++it) {
    const int i = tid + it * kThreads;
    packed[it] = 0u;
    scale_code[it] = 127;
    const uint8_t* src = i < total ? rows_s[i / units] : nullptr;
    if (src) {
      const int u = i % units;
      packed[it] = *reinterpret_cast<const uint32_t*>(src + u * 4);
      scale_code[it] = src[dim / 2 + u / 4];
    }
  }
#pragma unroll
  for (int it = 0; it < kLoadsPerThread; ++it) {
    const int i = tid + it * kThreads;
    if (i < total) {
      const int r = i / units, u = i % units;
      *reinterpret_cast<uint4*>(k_s + r * ld + u * 8) =
          dequant_e2m1x8(packed[it], ue8m0_to_float(scale_code[it]));
    }
  }
  __syncthreads();

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
  __syncthreads();
  if (tid < n) {
    float score = 0.0f;
    for (int h = 0; h < heads; ++h) score = __fadd_rn(score, terms[tid * kTermStride + h]);
    a.scores[int64_t(t) * a.score_stride + tile + tid] = float_to_bf16_bits(score);
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
  const dim3 grid(unsigned(a.batch.tokens), unsigned((a.max_visible + kTileKeys - 1) / kTileKeys));
  launch_dependent(indexer_scores_kernel, grid, kThreads, shared_bytes(a.dim), stream, a);
}

}  // namespace dsv4::cuda
