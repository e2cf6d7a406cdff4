// Sparse attention on sm_90a in one pass over a token's list, the reference kernel's online
// softmax (cpu::attend_head): per 64-row block the running maximum grows, O and the row sums
// are rescaled by 2^(m_old − m_new) (log2 domain), P = bf16(2^(s − m_new)), O += P·V; the sink
// enters the denominator at the end. With several splits per token each CTA writes its
// unnormalised fp32 partials (O, l, m) and attention_split_combine merges them in split order
// (deterministic; each split starts its own running maximum).
//
// One CTA per (token, 64 heads, split), 384 threads: a producer warpgroup (produce_row_tiles:
// three warps gather 32-row tiles into a three-stage ring) and two consumer warpgroups, one per
// half of the 512 dims, in lockstep per block. Each dequantizes its dims of the block's two
// tiles into bf16 operands, computes the partial scores S_g = Q_g·K_gᵀ over its dims (wgmma
// m64n64k16, Q and K from shared memory), and the two exchange them through shared memory:
// both then hold S = S_0 + S_1 bit for bit, run the same softmax, and each adds P·V_g to its
// half of O (wgmma m64n256k16, P from registers, V read MN-major from the block).
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_sm90_tiles.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

using namespace sm90_attention;

constexpr int kStages = 3;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 32 * kProducerWarps;
constexpr int kHalfBytes = (kHalfDim / 64) * kDimBlockBytes;  // a half's Q or K operand: 32 KB
constexpr int kScoreFloats = kHeads * kBlockRows / 128;       // partial scores per thread: 32
static_assert(kHeads == kBlockRows, "Q and a block share the operand layout");

// Shared memory, from a 1024-byte-aligned base: Q and the block as [dim half][4 x 64 dims]
// swizzled bf16 operands, the partial-score exchange [half][8][128 threads][4], the row ring, its
// row flags, its barriers.
constexpr int kQOffset = 0;
constexpr int kKvOffset = kQOffset + 2 * kHalfBytes;
constexpr int kExchangeOffset = kKvOffset + 2 * kHalfBytes;
constexpr int kSlotsOffset = kExchangeOffset + 2 * kScoreFloats * 128 * 4;
constexpr int kFlagsOffset = kSlotsOffset + kStages * kTileSlotBytes;
constexpr int kBarrierOffset = kFlagsOffset + kStages * kTileRows * 4;
constexpr int kSharedBytes = kBarrierOffset + 2 * kStages * 8 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kBlockTiles = kBlockRows / kTileRows;
// Named barriers of the two consumer warpgroups (0 is __syncthreads).
constexpr int kBlockReady = 1, kScoresExchanged = 2;

// The token's Q for heads [head0, head0 + 64) into the swizzled operand, by the consumers.
__device__ __forceinline__ void load_queries(const SparseAttentionArgs& a, int32_t t, int head0,
                                             uint8_t* q_s, int tid) {
  constexpr int kChunks = kHeads * kDim / 8, kPerThread = kChunks / kConsumerThreads;
  const uint16_t* q = a.q + (int64_t(t) * a.heads + head0) * kDim;
  uint4 v[kPerThread];
#pragma unroll
  for (int n = 0; n < kPerThread; ++n) {
    const int i = tid + n * kConsumerThreads;
    v[n] = *reinterpret_cast<const uint4*>(q + (i / (kDim / 8)) * kDim + (i % (kDim / 8)) * 8);
  }
#pragma unroll
  for (int n = 0; n < kPerThread; ++n) {
    const int i = tid + n * kConsumerThreads, h = i / (kDim / 8), c = i % (kDim / 8);
    *reinterpret_cast<uint4*>(q_s + (c / 8) * kDimBlockBytes + swizzled_offset(h, (c % 8) * 8)) =
        v[n];
  }
}

#endif  // __CUDA_ARCH__ >= 900

__global__ void __launch_bounds__(kThreads, 1)
    sparse_attention_sm90(const SparseAttentionArgs a, AttentionPlan plan) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Offsetting the __shared__ array itself keeps accesses in the shared window (LDS/STS).
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const AttentionToken k = attention_token(a, int32_t(blockIdx.x));
  const TileRange range = split_tiles(k, plan.blocks_per_split);
  if (range.count <= 0) return;  // this token has fewer splits

  const RowRing ring{smem + kSlotsOffset, reinterpret_cast<uint64_t*>(smem + kBarrierOffset),
                     reinterpret_cast<uint64_t*>(smem + kBarrierOffset) + kStages,
                     reinterpret_cast<int32_t*>(smem + kFlagsOffset)};
  // The producer warpgroup returns here; a stage is released by both warpgroups' warps.
  if (!split_warp_roles<kStages>(a, k, range, ring, kConsumerThreads / 32, kConsumerThreads))
    return;

  const int half = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, in_group = tid % 128;
  const int head0 = int(blockIdx.y) * kHeads;
  const int row0 = 16 * warp + lane / 4;  // this thread's heads: row0 and row0 + 8
  load_queries(a, k.t, head0, smem + kQOffset, tid);
  fence_proxy_async_shared();

  uint8_t* kv_half = smem + kKvOffset + half * kHalfBytes;
  const uint64_t q_descriptor = smem_descriptor(smem + kQOffset + half * kHalfBytes, 16, 1024);
  const uint64_t k_descriptor = smem_descriptor(kv_half, 16, 1024);
  const uint64_t v_descriptor = smem_descriptor(kv_half, kDimBlockBytes, 1024);
  auto* exchange = reinterpret_cast<float*>(smem + kExchangeOffset);
  // Scores 4j .. 4j + 3 of a thread at float4 j·128 + in_group of its half's exchange.
  auto* mine = reinterpret_cast<float4*>(exchange + half * kScoreFloats * 128) + in_group;
  const auto* theirs =
      reinterpret_cast<const float4*>(exchange + (1 - half) * kScoreFloats * 128) + in_group;
  const float scale_log2 = a.scale * kLog2e;

  float o[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int blocks = range.count / kBlockTiles;
  for (int b = 0; b < blocks; ++b) {
    // This half's dims of the block's two tiles; the first tile's loads overlap the P·V of
    // block b - 1, which must have read the operand before the stores.
    uint32_t valid[kBlockTiles];
#pragma unroll
    for (int t = 0; t < kBlockTiles; ++t) {
      const int i = b * kBlockTiles + t, stage = i % kStages;
      mbarrier_wait(&ring.full[stage], (i / kStages) & 1);
      const int32_t flags = ring.row_flags[stage * kTileRows + lane];
      valid[t] = __ballot_sync(0xffffffffu, !(flags & kRowMasked));
      dequantize_half_tile(ring.slots + stage * kTileSlotBytes, flags, kv_half, t * kTileRows, half,
                           warp, lane, [&] {
                             if (t == 0) {
                               wgmma_wait<0>();
                               wgmma_fence_operands(o);
                             }
                           });
      __syncwarp();
      if (lane == 0) mbarrier_arrive(&ring.empty[stage]);
    }
    fence_proxy_async_shared();
    // Both halves wait here, so neither rewrites its exchanged scores before the other read them.
    named_barrier_sync(kBlockReady, kConsumerThreads);

    // s[4c + e]: head row0 (+8 for e >= 2), block row 8c + 2·(lane % 4) + (e & 1).
    float s[kScoreFloats];
    wgmma_fence();
#pragma unroll
    for (int d = 0; d < kHalfDim / 64; ++d) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        // Descriptors advance in 16-byte units of their start address.
        const uint64_t step = uint64_t((d * kDimBlockBytes + kk * 32) >> 4);
        wgmma_m64n64k16_bf16_ss(s, q_descriptor + step, k_descriptor + step, d + kk > 0);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(s);
#pragma unroll
    for (int j = 0; j < kScoreFloats / 4; ++j) {
      mine[j * 128] = make_float4(s[4 * j], s[4 * j + 1], s[4 * j + 2], s[4 * j + 3]);
    }
    named_barrier_sync(kScoresExchanged, kConsumerThreads);
    // S_0 + S_1 in both halves (fp32 addition commutes, so both hold the same bits).
#pragma unroll
    for (int j = 0; j < kScoreFloats / 4; ++j) {
      const float4 v = theirs[j * 128];
      s[4 * j] += v.x;
      s[4 * j + 1] += v.y;
      s[4 * j + 2] += v.z;
      s[4 * j + 3] += v.w;
    }

    // The block's maxima (masked rows -inf), the grown running maxima and the rescale factors.
    float block_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < kScoreFloats; ++i) {
      // Block row 8·(i / 4) + 2·(lane % 4) + (i & 1) is row r of tile i / 16.
      const int r = 8 * ((i / 4) % 4) + 2 * (lane % 4) + (i & 1);
      s[i] = (valid[i / 16] >> r) & 1u ? s[i] * scale_log2 : -INFINITY;
      block_max[(i >> 1) & 1] = fmaxf(block_max[(i >> 1) & 1], s[i]);
    }
    float rescale[2], base[2];
    grow_running_maxima(block_max, m, base, rescale);
    uint32_t p[kScoreFloats / 2];
    float block_sum[2] = {0.0f, 0.0f};
    exponentiate_block(s, base, p, block_sum, [](int, uint32_t) {});
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * rescale[h] + block_sum[h];
    if (rescale[0] != 1.0f || rescale[1] != 1.0f) {
#pragma unroll
      for (int i = 0; i < 128; ++i) o[i] *= rescale[(i >> 1) & 1];
    }

    add_pv_from_registers(o, p, v_descriptor);  // O_half += P·V_half
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
  const int splits = int(gridDim.z);
  if (splits == 1) {
    float den[2], reciprocal[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      den[h] = l[h] + exp2f(a.sink[head0 + row0 + 8 * h] * kLog2e - m[h]);
      reciprocal[h] = __frcp_rn(den[h]);
    }
#pragma unroll
    for (int j = 0; j < 64; ++j) {
      const int h = j & 1, head = head0 + row0 + 8 * h;
      const float v0 = divide_rn(o[2 * j], den[h], reciprocal[h]);
      const float v1 = divide_rn(o[2 * j + 1], den[h], reciprocal[h]);
      *reinterpret_cast<uint32_t*>(a.out + (int64_t(k.t) * a.heads + head) * kDim + col0 +
                                   8 * (j / 2)) = bf16x2_bits(v0, v1);
    }
  } else {
    const AttentionWorkspace ws(a.workspace, int32_t(gridDim.x), a.heads, splits);
    const int64_t base = (int64_t(blockIdx.x) * splits + blockIdx.z) * a.heads + head0 + row0;
    store_split_partials(ws, base, col0, o, m, l, half == 0 && lane % 4 == 0);
  }
#else
  __trap();
#endif
}

// o = Σ_s 2^(m_s − M)·O_s / (Σ_s 2^(m_s − M)·l_s + exp(sink − M)), M = max_s m_s, in split order.
__global__ void __launch_bounds__(128)
    attention_split_combine(const SparseAttentionArgs a, AttentionPlan plan) {
  wait_for_previous_kernel();
  const int32_t t = int32_t(blockIdx.x), head = int32_t(blockIdx.y);
  const AttentionToken k = attention_token(a, t);
  const int n_splits = token_splits(k, plan.blocks_per_split, plan.splits);
  const AttentionWorkspace ws(a.workspace, int32_t(gridDim.x), a.heads, plan.splits);
  const int64_t first = int64_t(t) * plan.splits * a.heads + head;
  float big = -INFINITY;
  for (int s = 0; s < n_splits; ++s) big = fmaxf(big, ws.maxima[first + int64_t(s) * a.heads]);
  float den = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s = 0; s < n_splits; ++s) {
    const int64_t row = first + int64_t(s) * a.heads;
    const float w = exp2f(ws.maxima[row] - big);
    den += ws.sums[row] * w;
    const float4 v = reinterpret_cast<const float4*>(ws.outputs + row * kDim)[threadIdx.x];
    acc.x += v.x * w;
    acc.y += v.y * w;
    acc.z += v.z * w;
    acc.w += v.w * w;
  }
  den += exp2f(a.sink[head] * kLog2e - big);
  const uint2 bits = make_uint2(bf16x2_bits(__fdiv_rn(acc.x, den), __fdiv_rn(acc.y, den)),
                                bf16x2_bits(__fdiv_rn(acc.z, den), __fdiv_rn(acc.w, den)));
  reinterpret_cast<uint2*>(a.out + (int64_t(t) * a.heads + head) * kDim)[threadIdx.x] = bits;
}

}  // namespace

void launch_sparse_attention_sm90(const SparseAttentionArgs& a, const AttentionPlan& plan,
                                  cudaStream_t stream) {
  static const bool configured = [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        sparse_attention_sm90, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned(a.batch.tokens), unsigned(a.heads / kHeads), unsigned(plan.splits));
  launch_dependent(sparse_attention_sm90, grid, kThreads, kSharedBytes, stream, a, plan);
  if (plan.splits > 1) launch_attention_split_combine(a, plan, stream);
}

void launch_attention_split_combine(const SparseAttentionArgs& a, const AttentionPlan& plan,
                                    cudaStream_t stream) {
  launch_dependent(attention_split_combine, dim3(unsigned(a.batch.tokens), unsigned(a.heads)),
                   kDim / 4, 0, stream, a, plan);
}

}  // namespace dsv4::cuda
