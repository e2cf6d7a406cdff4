// Sparse attention with sink on sm_90a (head_dim 512, rope 64, 64 heads per CTA).
//
// One CTA per (query token, group of 64 heads, split of the token's rows); 384 threads:
//  - a producer warpgroup (which gives its registers to the consumers): each of three warps
//    takes every third 32-row tile, lane i looks up row i (window ring / chunk rows / compressed
//    entry through the block tables) and the warp copies the tile's rows with cp.async into a
//    3-stage ring (mbarriers); masked rows are flagged and not copied. (One bulk/TMA copy per row,
//    from the row's 16-byte-aligned start, was tried first: no faster.)
//  - two consumer warpgroups, one per half of the 512 dims: each dequantizes its half of the
//    tile (e4m3 · 2^k -> bf16, rope dims copied) into a 128-byte-swizzled tile, computes the
//    partial Q·Kᵀ over its dims (wgmma m64n32k16, Q from shared memory), the two halves are
//    summed through shared memory (both warpgroups then hold the same scores), and each
//    computes O_half += P·V_half (wgmma m64n256k16, P from registers as bf16, V read MN-major
//    from the same tile).
// Two passes over the rows, as the official semantics need the exact maximum M before any
// bf16(exp(s - M)) is rounded (an online maximum rounds P on other grids: ~1e-3 relative
// error): the first computes the scores only, for the per-head maxima; the second computes
// them again (bit-identical), P = bf16(exp(s - M)) with fp32 row sums of the unrounded values,
// and O += P·V; the sink enters the denominator at the end. With several splits, the maxima
// are per split (the second pass takes the largest), each CTA writes unnormalised fp32
// partials (O, l), and attention_split_combine adds them in split order (deterministic).
//
// Measured (bench/RESULTS.md, H200): ~100 TFLOP/s of useful work, 0.10-0.12 of the roofline,
// for every shape, far from issue 5's targets. Variants without one stage (no copies, no
// dequantization, no Q·Kᵀ, no exchange) each save 5-24%: the serial per-tile chain of one CTA
// per SM and the second pass set the pace, not memory.
#include <mutex>

#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_rows.cuh"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr int kHeads = 64;
constexpr int kTileRows = 32;
[[maybe_unused]] constexpr int kDim = 512, kNope = 448, kRope = 64, kRowBytes = 584;
[[maybe_unused]] constexpr int kHalfDim = kDim / 2;
constexpr int kStages = 3;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 128;  // a producer warpgroup
[[maybe_unused]] constexpr int kConsumerRegisters = 232, kProducerRegisters = 40;
constexpr float kLog2e = 1.4426950408889634f;

// Shared memory, from a 1024-byte-aligned base. Swizzled tiles are [64-dim block][rows][128 B].
constexpr int kQHalfBytes = 4 * kHeads * 128;      // 32 KB: one warpgroup's Q dims
constexpr int kKvHalfBytes = 4 * kTileRows * 128;  // 16 KB: one warpgroup's tile dims
constexpr int kQOffset = 0;
constexpr int kKvOffset = kQOffset + 2 * kQHalfBytes;  // [tile parity][half]
constexpr int kRawOffset = kKvOffset + 4 * kKvHalfBytes;
constexpr int kRawStageBytes = kTileRows * kRowBytes;
constexpr int kExchangeOffset = kRawOffset + kStages * kRawStageBytes;
constexpr int kExchangeFloats = 2 * 128 * 16;  // per tile parity: [half][4][128 threads][4]
constexpr int kValidOffset = kExchangeOffset + 2 * kExchangeFloats * 4;
constexpr int kBarrierOffset = kValidOffset + kStages * kTileRows * 4;
constexpr int kSharedBytes = kBarrierOffset + 2 * kStages * 8 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Producer warp w < kStages owns stage w and fills tiles w, w + kStages, ... (one warp per
// stage keeps each stage's phases in order): lane i looks up row i of the tile, then the warp
// copies the tile's rows with 8-byte cp.async (rows are only 8-byte aligned). The lookups are
// dependent loads (list, block table): a warp resolves its next tile right after issuing the
// copies of this one, so that their latency overlaps the copies in flight, never delays them. A
// stage is full after 32 plain arrivals (publishing the row flags) and 32 cp.async arrivals.
__device__ __forceinline__ void produce_rows(const SparseAttentionArgs& a, const AttentionToken& k,
                                             int tile_begin, int tiles, uint8_t* smem,
                                             uint64_t* full, uint64_t* empty, int32_t* valid,
                                             int warp, int lane) {
  const auto lookup = [&](int i) -> const uint8_t* {
    const int32_t j = (tile_begin + i) * kTileRows + lane;
    return i < tiles && j < k.n_rows ? attention_row(a, k, j, kRowBytes) : nullptr;
  };
  const uint8_t* next = lookup(warp);
  for (int i = warp; i < tiles; i += kStages) {
    const uint8_t* src = next;
    const int stage = warp;
    mbarrier_wait(&empty[stage], ((i / kStages) & 1) ^ 1);
    valid[stage * kTileRows + lane] = src != nullptr;
    mbarrier_arrive(&full[stage]);
    uint8_t* slots = smem + kRawOffset + stage * kRawStageBytes;
    for (int r = 0; r < kTileRows; ++r) {
      const auto* row = reinterpret_cast<const uint8_t*>(
          __shfl_sync(0xffffffffu, reinterpret_cast<unsigned long long>(src), r));
      if (!row) continue;
      for (int c = lane; c < kRowBytes / 8; c += 32) {
        cp_async_8(slots + r * kRowBytes + c * 8, row + c * 8);
      }
    }
    cp_async_arrive_noinc(&full[stage]);
    next = lookup(i + kStages);  // its latency overlaps the copies in flight
  }
}

// One warpgroup's dims of one tile: row = 4·n + warp, 8-dim chunk = lane. Branch-free, so that
// all eight rows' shared loads issue together; masked rows become zero by selection (their
// slots hold stale bytes, and 0 · garbage must never reach the accumulators).
__device__ __forceinline__ void dequantize_tile(const uint8_t* raw, uint32_t valid, uint8_t* kv,
                                                int half, int warp, int lane) {
  constexpr int kRowsPerWarp = kTileRows / 4;
  const int dim = half * kHalfDim + lane * 8;
  const bool nope = dim < kNope;
  const int offset = nope ? dim : kNope + (dim - kNope) * 2;
  const int scale_at = kNope + 2 * kRope + min(dim, kNope - 1) / 64;
  uint2 lo[kRowsPerWarp], hi[kRowsPerWarp];
  uint8_t scale[kRowsPerWarp];
#pragma unroll
  for (int n = 0; n < kRowsPerWarp; ++n) {
    const uint8_t* row = raw + (4 * n + warp) * kRowBytes;
    lo[n] = *reinterpret_cast<const uint2*>(row + offset);
    hi[n] = nope ? make_uint2(0u, 0u) : *reinterpret_cast<const uint2*>(row + offset + 8);
    scale[n] = row[scale_at];
  }
#pragma unroll
  for (int n = 0; n < kRowsPerWarp; ++n) {
    const int r = 4 * n + warp;
    uint4 v =
        nope ? dequant_e4m3x8(lo[n], scale[n]) : make_uint4(lo[n].x, lo[n].y, hi[n].x, hi[n].y);
    if (!((valid >> r) & 1u)) v = make_uint4(0u, 0u, 0u, 0u);
    *reinterpret_cast<uint4*>(kv + (lane / 8) * (kTileRows * 128) +
                              swizzled_offset(r, (lane % 8) * 8)) = v;
  }
}

// 2^x with one MUFU instruction (relative error ~2^-22, far below P's bf16 rounding).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

#endif  // __CUDA_ARCH__ >= 900

// Where the passes keep their per-(token, split, head) results in the workspace: the maxima
// (log2 domain), then with several splits the row sums and the unnormalised outputs.
struct SplitWorkspace {
  float* maxima;
  float* sums;
  float* outputs;  // [token][split][head][512]
  __device__ SplitWorkspace(const SparseAttentionArgs& a, int splits) {
    const int64_t rows = int64_t(a.batch.tokens) * splits * a.heads;
    maxima = a.workspace;
    sums = maxima + rows;
    outputs = sums + rows;
  }
};

__device__ __forceinline__ int token_splits(const AttentionToken& k, int tiles_per_split,
                                            int splits) {
  const int n_tiles = (k.n_rows + kTileRows - 1) / kTileRows;
  return min(splits, (n_tiles + tiles_per_split - 1) / tiles_per_split);
}

// Pass kMaxPass: the maximum score of every head over this CTA's rows. Output pass: with the
// token's exact maximum M (over all splits), P = bf16(exp(s - M)), fp32 row sums, O += P·V.
template <bool kMaxPass>
__global__ void __launch_bounds__(kThreads, 1)
    sparse_attention_sm90_kernel(const SparseAttentionArgs a, int32_t tiles_per_split) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Offsetting the __shared__ array itself keeps accesses in the shared window (LDS/STS).
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const AttentionToken k = attention_token(a, int32_t(blockIdx.x));
  const int n_tiles = (k.n_rows + kTileRows - 1) / kTileRows;
  // The last split also takes any tiles beyond the planned bound (never dropped).
  const int tile_begin = int(blockIdx.z) * tiles_per_split;
  const int tile_end =
      blockIdx.z + 1 == gridDim.z ? n_tiles : min(n_tiles, tile_begin + tiles_per_split);
  const int tiles = tile_end - tile_begin;
  if (tiles <= 0) return;  // this token has fewer splits

  auto* full = reinterpret_cast<uint64_t*>(smem + kBarrierOffset);
  uint64_t* empty = full + kStages;
  auto* row_flags = reinterpret_cast<int32_t*>(smem + kValidOffset);  // [stage][row]: valid
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 64);
      mbarrier_init(&empty[s], kConsumerThreads / 32);
    }
    fence_barrier_init();
  }
  __syncthreads();

  if (tid >= kConsumerThreads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    const int warp = (tid - kConsumerThreads) / 32;
    if (warp < kStages) {
      produce_rows(a, k, tile_begin, tiles, smem, full, empty, row_flags, warp, tid % 32);
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));

  const int half = tid / 128, t128 = tid % 128, warp = t128 / 32, lane = tid % 32;
  const int head0 = int(blockIdx.y) * kHeads;
  const int row0 = 16 * warp + lane / 4;  // this thread's heads: row0 and row0 + 8
  const int splits = int(gridDim.z);
  const SplitWorkspace ws(a, splits);
  uint8_t* q_half = smem + kQOffset + half * kQHalfBytes;
  {
    const uint16_t* q = a.q + (int64_t(k.t) * a.heads + head0) * kDim + half * kHalfDim;
    for (int i = t128; i < kHeads * (kHalfDim / 8); i += 128) {
      const int h = i / 32, c = i % 32;
      const uint4 v = *reinterpret_cast<const uint4*>(q + h * kDim + c * 8);
      *reinterpret_cast<uint4*>(q_half + (c / 8) * (kHeads * 128) +
                                swizzled_offset(h, (c % 8) * 8)) = v;
    }
  }
  const float scale_log2 = a.scale * kLog2e;
  // The running maximum (max pass) or the token's maximum over all splits (output pass).
  float m[2] = {-INFINITY, -INFINITY};
  if (!kMaxPass) {
    const int n_splits = token_splits(k, tiles_per_split, splits);
    for (int s = 0; s < n_splits; ++s) {
      const int64_t at = (int64_t(k.t) * splits + s) * a.heads + head0 + row0;
      m[0] = fmaxf(m[0], ws.maxima[at]);
      m[1] = fmaxf(m[1], ws.maxima[at + 8]);
    }
  }
  const uint64_t q_descriptor = smem_descriptor(q_half, 16, 1024);
  // Tile parity b's K-major (scores) and MN-major (P·V) views; parity 1 is 2 · 16 KB further.
  const uint64_t kv_descriptor0 = smem_descriptor(smem + kKvOffset + half * kKvHalfBytes, 16, 1024);
  const uint64_t v_descriptor0 =
      smem_descriptor(smem + kKvOffset + half * kKvHalfBytes, kTileRows * 128, 1024);
  constexpr uint64_t kParityStep = (2 * kKvHalfBytes) >> 4;
  fence_proxy_async_shared();
  named_barrier_sync(1 + half, 128);

  [[maybe_unused]] float o[kMaxPass ? 1 : 128];  // written by the first P·V (scale-d 0)
  float l[2] = {0.0f, 0.0f};
  for (int i = 0; i < tiles; ++i) {
    const int stage = i % kStages;
    mbarrier_wait(&full[stage], (i / kStages) & 1);
    const uint32_t valid = __ballot_sync(0xffffffffu, row_flags[stage * kTileRows + lane] != 0);
    uint8_t* kv = smem + kKvOffset + ((i % 2) * 2 + half) * kKvHalfBytes;
    dequantize_tile(smem + kRawOffset + stage * kRawStageBytes, valid, kv, half, warp, lane);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&empty[stage]);
    fence_proxy_async_shared();
    named_barrier_sync(1 + half, 128);

    // Partial scores over this half's dims; waiting for them also retires the previous P·V.
    float s[16];  // written by the first wgmma (scale-d 0)
    wgmma_fence();
#pragma unroll
    for (int b = 0; b < 4; ++b) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        // Descriptors advance in 16-byte units of their start address.
        wgmma_m64n32k16_ss(s, q_descriptor + uint64_t((b * (kHeads * 128) + kk * 32) >> 4),
                           kv_descriptor0 + (i % 2) * kParityStep +
                               uint64_t((b * (kTileRows * 128) + kk * 32) >> 4),
                           b + kk > 0);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();

    // Full scores: half 0's partial + half 1's, in that order in both warpgroups (the two
    // passes compute bit-identical scores).
    float* exchange = reinterpret_cast<float*>(smem + kExchangeOffset) + (i % 2) * kExchangeFloats;
#pragma unroll
    for (int q4 = 0; q4 < 4; ++q4) {
      reinterpret_cast<float4*>(exchange)[(half * 4 + q4) * 128 + t128] =
          make_float4(s[4 * q4], s[4 * q4 + 1], s[4 * q4 + 2], s[4 * q4 + 3]);
    }
    named_barrier_sync(3, kConsumerThreads);
#pragma unroll
    for (int q4 = 0; q4 < 4; ++q4) {
      const float4 other =
          reinterpret_cast<const float4*>(exchange)[((1 - half) * 4 + q4) * 128 + t128];
      const float theirs[4] = {other.x, other.y, other.z, other.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[4 * q4 + e] = half == 0 ? s[4 * q4 + e] + theirs[e] : theirs[e] + s[4 * q4 + e];
      }
    }

    // s[4j + e]: head row0 (+8 for e >= 2), tile row 8j + 2·(lane % 4) + (e & 1); scaled to
    // the log2 domain, masked rows -inf.
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      const int row = 8 * (e / 4) + 2 * (lane % 4) + (e & 1);
      s[e] = (valid >> row) & 1u ? s[e] * scale_log2 : -INFINITY;
    }
    if constexpr (kMaxPass) {
#pragma unroll
      for (int e = 0; e < 16; ++e) m[(e >> 1) & 1] = fmaxf(m[(e >> 1) & 1], s[e]);
    } else {
      uint32_t p[8];
#pragma unroll
      for (int e = 0; e < 16; e += 2) {
        const int h = (e >> 1) & 1;
        const float p0 = exp2_approx(s[e] - m[h]), p1 = exp2_approx(s[e + 1] - m[h]);
        l[h] += p0 + p1;
        p[e / 2] = bf16x2_bits(p0, p1);
      }
      // O_half += P·V_half: two k16 steps over the tile's 32 rows; p[4kk .. 4kk + 3] are the A
      // fragment of step kk (score column blocks 2kk and 2kk + 1).
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 2; ++kk) {
        const uint32_t pa[4] = {p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3]};
        wgmma_m64n256k16_rs_mn(
            o, pa, v_descriptor0 + (i % 2) * kParityStep + uint64_t((kk * 2048) >> 4), i + kk > 0);
      }
      wgmma_commit();
    }
  }

  if constexpr (kMaxPass) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[h] = fmaxf(m[h], __shfl_xor_sync(0xffffffffu, m[h], 1));
      m[h] = fmaxf(m[h], __shfl_xor_sync(0xffffffffu, m[h], 2));
    }
    if (half == 0 && lane % 4 == 0) {
      const int64_t at = (int64_t(k.t) * splits + blockIdx.z) * a.heads + head0 + row0;
      ws.maxima[at] = m[0];
      ws.maxima[at + 8] = m[1];
    }
  } else {
    wgmma_wait<0>();
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
      l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
    // o[4j + 2h + x]: head row0 + 8h, dim half·256 + 8j + 2·(lane % 4) + x.
    const int col0 = half * kHalfDim + 2 * (lane % 4);
    if (splits == 1) {
      float den[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        den[h] = l[h] + exp2f(a.sink[head0 + row0 + 8 * h] * kLog2e - m[h]);
      }
#pragma unroll
      for (int j = 0; j < 64; ++j) {
        const int h = j & 1, head = head0 + row0 + 8 * h;
        const float v0 = __fdiv_rn(o[2 * j], den[h]), v1 = __fdiv_rn(o[2 * j + 1], den[h]);
        *reinterpret_cast<uint32_t*>(a.out + (int64_t(k.t) * a.heads + head) * kDim + col0 +
                                     8 * (j / 2)) = bf16x2_bits(v0, v1);
      }
    } else {
      const int64_t base = (int64_t(k.t) * splits + blockIdx.z) * a.heads + head0 + row0;
#pragma unroll
      for (int j = 0; j < 64; ++j) {
        const int64_t row = base + 8 * (j & 1);
        *reinterpret_cast<float2*>(ws.outputs + row * kDim + col0 + 8 * (j / 2)) =
            make_float2(o[2 * j], o[2 * j + 1]);
      }
      if (half == 0 && lane % 4 == 0) {
        ws.sums[base] = l[0];
        ws.sums[base + 8] = l[1];
      }
    }
  }
#else
  __trap();
#endif
}

// o = Σ_s O_s / (Σ_s l_s + exp(sink - M)), in split order (all splits share the maximum M).
__global__ void __launch_bounds__(128)
    attention_split_combine(const SparseAttentionArgs a, int32_t tiles_per_split, int32_t splits) {
  const int32_t t = int32_t(blockIdx.x), head = int32_t(blockIdx.y);
  const AttentionToken k = attention_token(a, t);
  const int n_splits = token_splits(k, tiles_per_split, splits);
  const SplitWorkspace ws(a, splits);
  float big = -INFINITY, den = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s = 0; s < n_splits; ++s) {
    const int64_t row = (int64_t(t) * splits + s) * a.heads + head;
    big = fmaxf(big, ws.maxima[row]);
    den += ws.sums[row];
    const float4 v = reinterpret_cast<const float4*>(ws.outputs + row * kDim)[threadIdx.x];
    acc.x += v.x;
    acc.y += v.y;
    acc.z += v.z;
    acc.w += v.w;
  }
  den += exp2f(a.sink[head] * kLog2e - big);
  const uint2 bits = make_uint2(bf16x2_bits(__fdiv_rn(acc.x, den), __fdiv_rn(acc.y, den)),
                                bf16x2_bits(__fdiv_rn(acc.z, den), __fdiv_rn(acc.w, den)));
  reinterpret_cast<uint2*>(a.out + (int64_t(t) * a.heads + head) * kDim)[threadIdx.x] = bits;
}

}  // namespace

size_t attention_split_workspace_bytes(int32_t tokens, int32_t heads, int32_t splits) {
  const size_t rows = size_t(tokens) * size_t(splits) * size_t(heads);
  return sizeof(float) * (splits > 1 ? rows * (2 + kDim) : rows);
}

void launch_sparse_attention_sm90(const SparseAttentionArgs& a, const AttentionSplit& split,
                                  cudaStream_t stream) {
  static std::once_flag configured;
  std::call_once(configured, [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(sparse_attention_sm90_kernel<true>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         kSharedBytes));
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(sparse_attention_sm90_kernel<false>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         kSharedBytes));
  });
  const dim3 grid(unsigned(a.batch.tokens), unsigned(a.heads / kHeads), unsigned(split.splits));
  sparse_attention_sm90_kernel<true>
      <<<grid, kThreads, kSharedBytes, stream>>>(a, split.tiles_per_split);
  DSV4_CUDA_CHECK(cudaGetLastError());
  sparse_attention_sm90_kernel<false>
      <<<grid, kThreads, kSharedBytes, stream>>>(a, split.tiles_per_split);
  DSV4_CUDA_CHECK(cudaGetLastError());
  if (split.splits > 1) {
    attention_split_combine<<<dim3(unsigned(a.batch.tokens), unsigned(a.heads)), kDim / 4, 0,
                              stream>>>(a, split.tiles_per_split, split.splits);
    DSV4_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace dsv4::cuda
