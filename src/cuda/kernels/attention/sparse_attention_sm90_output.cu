// Sparse attention on sm_90a, second kernel and the split combine: with every score and the
// token's exact maximum M from attention_scores_sm90, P = bf16(exp(s − M)), fp32 row sums of the
// unrounded values, O += P·V; the sink enters the denominator at the end. With several splits
// each CTA writes unnormalised fp32 partials (O, l) and attention_split_combine adds them in
// split order (deterministic).
//
// One CTA per (token, 64 heads, split), 384 threads: the producer warpgroup (produce_row_tiles)
// and two consumer warpgroups, one per half of the 512 value dims, which never wait for each
// other: each dequantizes its half of tile i (while its P·V of tile i − 1 runs), reads tile i's
// scores (loaded one tile ahead) and issues O_half += P·V_half (wgmma m64n256k16, P from
// registers as bf16, V read MN-major from the tile).
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_sm90_tiles.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

using namespace sm90_attention;

constexpr int kStages = 8;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 32 * kProducerWarps;

// Shared memory, from a 1024-byte-aligned base: [parity][half] bf16 tiles, the row ring, its
// row flags, its barriers.
constexpr int kTilesOffset = 0;
constexpr int kSlotsOffset = kTilesOffset + 4 * kHalfTileBytes;
constexpr int kFlagsOffset = kSlotsOffset + kStages * kTileSlotBytes;
constexpr int kBarrierOffset = kFlagsOffset + kStages * kTileRows * 4;
constexpr int kSharedBytes = kBarrierOffset + 2 * kStages * 8 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

__global__ void __launch_bounds__(kThreads, 1)
    attention_output_sm90(const SparseAttentionArgs a, int32_t first, AttentionPlan plan) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const int32_t t_local = int32_t(blockIdx.x);
  const AttentionToken k = attention_token(a, first + t_local);
  const TileRange range = split_tiles(k, plan.tiles_per_split);
  if (range.count <= 0) return;

  const RowRing ring{smem + kSlotsOffset, reinterpret_cast<uint64_t*>(smem + kBarrierOffset),
                     reinterpret_cast<uint64_t*>(smem + kBarrierOffset) + kStages,
                     reinterpret_cast<int32_t*>(smem + kFlagsOffset)};
  // The producer warpgroup returns here; a stage is released by both warpgroups' warps.
  if (!split_warp_roles<kStages>(a, k, range, ring, kConsumerThreads / 32, kConsumerThreads))
    return;

  const int half = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
  const int head0 = int(blockIdx.y) * kHeads;
  const int row0 = 16 * warp + lane / 4;  // this thread's heads: row0 and row0 + 8
  const int splits = int(gridDim.z);
  const AttentionWorkspace ws(a.workspace, int32_t(gridDim.x), a.heads, splits);
  // The token's maximum over all splits.
  float m[2] = {-INFINITY, -INFINITY};
  const int n_splits = token_splits(k, plan.tiles_per_split, splits);
  for (int s = 0; s < n_splits; ++s) {
    const int64_t at = (int64_t(t_local) * splits + s) * a.heads + head0 + row0;
    m[0] = fmaxf(m[0], ws.maxima[at]);
    m[1] = fmaxf(m[1], ws.maxima[at + 8]);
  }
  // s[4c + e]: head row0 (+8 for e >= 2), tile row 8c + 2·(lane % 4) + (e & 1): the layout of
  // the scores kernel's accumulators, which is also P's A-fragment layout.
  const float* scores =
      ws.scores + (int64_t(t_local) * a.heads + head0 + row0) * plan.score_stride + 2 * (lane % 4);
  const auto load_scores = [&](int i, float(&s)[16]) {
    if (i >= range.count) return;
    const float* in = scores + (range.begin + i) * kTileRows;
#pragma unroll
    for (int e = 0; e < 16; e += 2) {
      const float2 v = *reinterpret_cast<const float2*>(
          in + int64_t(8 * ((e >> 1) & 1)) * plan.score_stride + 8 * (e / 4));
      s[e] = v.x;
      s[e + 1] = v.y;
    }
  };
  // Tile parity b's MN-major view of this half's dims; parity 1 is 2 · 16 KB further.
  uint8_t* tiles = smem + kTilesOffset + half * kHalfTileBytes;
  const uint64_t v_descriptor = smem_descriptor(tiles, kTileRows * 128, 1024);
  constexpr uint64_t kParityStep = (2 * kHalfTileBytes) >> 4;

  float o[128];  // written by the first P·V (scale-d 0)
  float l[2] = {0.0f, 0.0f};
  float s_next[16];
  load_scores(0, s_next);
  for (int i = 0; i < range.count; ++i) {
    float s[16];
#pragma unroll
    for (int e = 0; e < 16; ++e) s[e] = s_next[e];
    load_scores(i + 1, s_next);
    const int stage = i % kStages;
    mbarrier_wait(&ring.full[stage], (i / kStages) & 1);
    const int32_t flags = ring.row_flags[stage * kTileRows + lane];
    wgmma_wait<1>();  // the P·V of tile i - 2 has read this parity
    dequantize_half_tile(ring.slots + stage * kTileSlotBytes, flags,
                         tiles + (i % 2) * 2 * kHalfTileBytes, half, warp, lane);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&ring.empty[stage]);
    fence_proxy_async_shared();
    named_barrier_sync(1 + half, 128);

    uint32_t p[8];
#pragma unroll
    for (int e = 0; e < 16; e += 2) {
      const int h = (e >> 1) & 1;
      const float p0 = exp2_approx(s[e] - m[h]), p1 = exp2_approx(s[e + 1] - m[h]);
      l[h] += p0 + p1;
      p[e / 2] = bf16x2_bits(p0, p1);
    }
    // O_half += P·V_half: two k16 steps over the tile's 32 rows; p[4kk .. 4kk + 3] are the A
    // fragment of step kk.
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const uint32_t pa[4] = {p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3]};
      wgmma_m64n256k16_rs_mn(
          o, pa, v_descriptor + (i % 2) * kParityStep + uint64_t((kk * 2048) >> 4), i + kk > 0);
    }
    wgmma_commit();
  }
  wgmma_wait<0>();
  wgmma_fence_operands(o);

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
    const int64_t base = (int64_t(t_local) * splits + blockIdx.z) * a.heads + head0 + row0;
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
#else
  __trap();
#endif
}

// o = Σ_s O_s / (Σ_s l_s + exp(sink - M)), in split order (all splits share the maximum M).
__global__ void __launch_bounds__(128)
    attention_split_combine(const SparseAttentionArgs a, int32_t first, AttentionPlan plan) {
  const int32_t t_local = int32_t(blockIdx.x), head = int32_t(blockIdx.y);
  const AttentionToken k = attention_token(a, first + t_local);
  const int n_splits = token_splits(k, plan.tiles_per_split, plan.splits);
  const AttentionWorkspace ws(a.workspace, int32_t(gridDim.x), a.heads, plan.splits);
  float big = -INFINITY, den = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s = 0; s < n_splits; ++s) {
    const int64_t row = (int64_t(t_local) * plan.splits + s) * a.heads + head;
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
  reinterpret_cast<uint2*>(a.out + (int64_t(k.t) * a.heads + head) * kDim)[threadIdx.x] = bits;
}

}  // namespace

void launch_sparse_attention_sm90(const SparseAttentionArgs& a, const AttentionPlan& plan,
                                  int32_t first, int32_t count, cudaStream_t stream) {
  static const bool configured = [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        attention_output_sm90, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    return true;
  }();
  (void)configured;
  launch_attention_scores_sm90(a, plan, first, count, stream);
  const dim3 grid(unsigned(count), unsigned(a.heads / kHeads), unsigned(plan.splits));
  attention_output_sm90<<<grid, kThreads, kSharedBytes, stream>>>(a, first, plan);
  DSV4_CUDA_CHECK(cudaGetLastError());
  if (plan.splits > 1) {
    attention_split_combine<<<dim3(unsigned(count), unsigned(a.heads)), kDim / 4, 0, stream>>>(
        a, first, plan);
    DSV4_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace dsv4::cuda
