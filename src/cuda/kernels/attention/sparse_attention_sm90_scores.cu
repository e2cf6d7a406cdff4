// Sparse attention on sm_90a, first kernel: every scaled score s = scale · log2(e) · q·k of a
// token's rows (masked rows -inf) into the workspace, and the per-head maximum of each split.
// The official semantics round P = bf16(exp(s − M)) with the exact maximum M, so the output
// kernel (sparse_attention_sm90_output.cu) needs every score and M before its first P.
//
// One CTA per (token, 64 heads, split), 384 threads: a producer warpgroup (4 warps, see
// produce_row_tiles) and two consumer warpgroups that take alternate tiles, each on its own
// pair of bf16 tiles: it dequantizes tile j + 1 while its Q·Kᵀ of tile j runs (wgmma
// m64n32k16, Q as register fragments loaded once, K from shared memory), and the other
// warpgroup's Q·Kᵀ fills the tensor cores while it stores scores.
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_sm90_tiles.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

using namespace sm90_attention;

constexpr int kStages = 4;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 32 * kProducerWarps;
constexpr int kTileBytes = 2 * kHalfTileBytes;  // a tile's 512 dims as bf16: 32 KB

// Shared memory, from a 1024-byte-aligned base: [warpgroup][parity] bf16 tiles, the row ring,
// its row flags, the maxima one warpgroup hands the other, the ring's barriers.
constexpr int kTilesOffset = 0;
constexpr int kSlotsOffset = kTilesOffset + 4 * kTileBytes;
constexpr int kFlagsOffset = kSlotsOffset + kStages * kTileSlotBytes;
constexpr int kMaximaOffset = kFlagsOffset + kStages * kTileRows * 4;
constexpr int kBarrierOffset = kMaximaOffset + kHeads * 4;
constexpr int kSharedBytes = kBarrierOffset + 2 * kStages * 8 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

__global__ void __launch_bounds__(kThreads, 1)
    attention_scores_sm90(const SparseAttentionArgs a, int32_t first, AttentionPlan plan) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Offsetting the __shared__ array itself keeps accesses in the shared window (LDS/STS).
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const int32_t t_local = int32_t(blockIdx.x);
  const AttentionToken k = attention_token(a, first + t_local);
  const TileRange range = split_tiles(k, plan.tiles_per_split);
  if (range.count <= 0) return;  // this token has fewer splits
  // A token with more rows than the plan's bound would overrun its score row: fail loudly.
  if ((range.begin + range.count) * kTileRows > plan.score_stride) __trap();

  const RowRing ring{smem + kSlotsOffset, reinterpret_cast<uint64_t*>(smem + kBarrierOffset),
                     reinterpret_cast<uint64_t*>(smem + kBarrierOffset) + kStages,
                     reinterpret_cast<int32_t*>(smem + kFlagsOffset)};
  // The producer warpgroup returns here; a stage is released by the warps of the warpgroup that
  // took its tile.
  if (!split_warp_roles<kStages>(a, k, range, ring, 4, kConsumerThreads)) return;

  const int group = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
  const int head0 = int(blockIdx.y) * kHeads;
  const int row0 = 16 * warp + lane / 4;  // this thread's heads: row0 and row0 + 8
  const AttentionWorkspace ws(a.workspace, int32_t(gridDim.x), a.heads, int32_t(gridDim.z));

  // Q as the A fragments of the 32 k-steps of 16 dims (see wgmma.cuh), all loads in flight.
  uint32_t qa[kDim / 16][4];
  {
    const auto* q = reinterpret_cast<const uint32_t*>(
        a.q + (int64_t(k.t) * a.heads + head0 + row0) * kDim + 2 * (lane % 4));
#pragma unroll
    for (int kk = 0; kk < kDim / 16; ++kk) {
      qa[kk][0] = q[8 * kk];
      qa[kk][1] = q[8 * kk + 4 * kDim];
      qa[kk][2] = q[8 * kk + 4];
      qa[kk][3] = q[8 * kk + 4 * kDim + 4];
    }
  }
  uint8_t* tiles = smem + kTilesOffset + 2 * group * kTileBytes;
  const uint64_t tile_descriptor = smem_descriptor(tiles, 16, 1024);
  const float scale_log2 = a.scale * kLog2e;
  float* scores =
      ws.scores + (int64_t(t_local) * a.heads + head0 + row0) * plan.score_stride + 2 * (lane % 4);
  float m[2] = {-INFINITY, -INFINITY};

  // This warpgroup's tiles: i = 2j + group.
  const int my_tiles = (range.count - group + 1) / 2;
  const auto load = [&](int j) -> uint32_t {
    const int i = 2 * j + group, stage = i % kStages;
    mbarrier_wait(&ring.full[stage], (i / kStages) & 1);
    const int32_t flags = ring.row_flags[stage * kTileRows + lane];
    const uint32_t valid = __ballot_sync(0xffffffffu, !(flags & kRowMasked));
    const uint8_t* slots = ring.slots + stage * kTileSlotBytes;
    uint8_t* tile = tiles + (j % 2) * kTileBytes;
    dequantize_half_tile(slots, flags, tile, 0, warp, lane);
    dequantize_half_tile(slots, flags, tile + kHalfTileBytes, 1, warp, lane);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&ring.empty[stage]);
    fence_proxy_async_shared();
    named_barrier_sync(1 + group, 128);
    return valid;
  };
  const auto issue = [&](float(&s)[16], int j) {
    wgmma_fence();
#pragma unroll
    for (int b = 0; b < kDim / 64; ++b) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        // Descriptors advance in 16-byte units of their start address.
        wgmma_m64n32k16_rs(
            s, qa[4 * b + kk],
            tile_descriptor +
                uint64_t(((j % 2) * kTileBytes + b * (kTileRows * 128) + kk * 32) >> 4),
            b + kk > 0);
      }
    }
    wgmma_commit();
  };
  // s[4c + e]: head row0 (+8 for e >= 2), tile row 8c + 2·(lane % 4) + (e & 1).
  const auto finish = [&](const float(&s)[16], int j, uint32_t valid) {
    float* out = scores + (range.begin + 2 * j + group) * kTileRows;
#pragma unroll
    for (int e = 0; e < 16; e += 2) {
      const int h = (e >> 1) & 1, row = 8 * (e / 4) + 2 * (lane % 4);
      const float v0 = (valid >> row) & 1u ? s[e] * scale_log2 : -INFINITY;
      const float v1 = (valid >> (row + 1)) & 1u ? s[e + 1] * scale_log2 : -INFINITY;
      m[h] = fmaxf(m[h], fmaxf(v0, v1));
      *reinterpret_cast<float2*>(out + int64_t(8 * h) * plan.score_stride + 8 * (e / 4)) =
          make_float2(v0, v1);
    }
  };
  // Tile j + 1 is dequantized while tile j's Q·Kᵀ runs. Every wgmma sits outside branches that
  // depend on the warpgroup (ptxas serialises wgmma in divergent paths): both warpgroups take
  // the same number of steps, and with an odd number of tiles warpgroup 1 issues its last
  // Q·Kᵀ on a stale tile and ignores it.
  const int steps = (range.count + 1) / 2;  // warpgroup 0's tiles
  float s[16];
  uint32_t valid_now = my_tiles > 0 ? load(0) : 0u;
  issue(s, 0);
  for (int j = 0; j + 1 < steps; ++j) {
    const uint32_t valid_next = j + 1 < my_tiles ? load(j + 1) : 0u;
    wgmma_wait<0>();
    wgmma_fence_operands(s);
    finish(s, j, valid_now);
    issue(s, j + 1);
    valid_now = valid_next;
  }
  wgmma_wait<0>();
  wgmma_fence_operands(s);
  if (steps - 1 < my_tiles) finish(s, steps - 1, valid_now);

    // Each head's maximum over both warpgroups' tiles.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    m[h] = fmaxf(m[h], __shfl_xor_sync(0xffffffffu, m[h], 1));
    m[h] = fmaxf(m[h], __shfl_xor_sync(0xffffffffu, m[h], 2));
  }
  auto* handed = reinterpret_cast<float*>(smem + kMaximaOffset);
  if (group == 1 && lane % 4 == 0) {
    handed[row0] = m[0];
    handed[row0 + 8] = m[1];
  }
  named_barrier_sync(3, kConsumerThreads);
  if (group == 0 && lane % 4 == 0) {
    const int64_t at = (int64_t(t_local) * gridDim.z + blockIdx.z) * a.heads + head0 + row0;
    ws.maxima[at] = fmaxf(m[0], handed[row0]);
    ws.maxima[at + 8] = fmaxf(m[1], handed[row0 + 8]);
  }
#else
  __trap();
#endif
}

}  // namespace

void launch_attention_scores_sm90(const SparseAttentionArgs& a, const AttentionPlan& plan,
                                  int32_t first, int32_t count, cudaStream_t stream) {
  static const bool configured = [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        attention_scores_sm90, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned(count), unsigned(a.heads / kHeads), unsigned(plan.splits));
  attention_scores_sm90<<<grid, kThreads, kSharedBytes, stream>>>(a, first, plan);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dsv4::cuda
