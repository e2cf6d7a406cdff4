// The pieces of the sm_90a sparse attention kernel: the shape constants, the split of a token's
// list over CTAs, the producer warps that gather a token's KV rows into a ring of 32-row tiles,
// and the dequantization of a tile into 128-byte-swizzled bf16 operands.
//
// A row (584 bytes, only 8-byte aligned in the pools) goes into a 592-byte slot so that source
// and destination agree mod 16: it starts at byte 8 of its slot when its address is 8 mod 16,
// at byte 0 otherwise. One bulk (TMA) copy moves its 16-byte-aligned 576 bytes and one 8-byte
// cp.async the rest. A masked row is a row of zeros (copied like any other), so its values are
// 0 and its scale 2^-127; its flag tells the scores to ignore it.
#pragma once

#include <cstdint>

#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_rows.cuh"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "model/config.h"

namespace dsv4::cuda::sm90_attention {

constexpr int kHeads = 64;  // heads per CTA: one wgmma M
constexpr int kTileRows = 32;
constexpr auto kBlockRows = int(kAttentionBlockRows);  // one block of the online softmax
constexpr int kDim = 512, kNope = 448, kRope = 64, kRowBytes = 584;
constexpr int kHalfDim = kDim / 2;
constexpr int kSlotBytes = 592;
constexpr int kTileSlotBytes = kTileRows * kSlotBytes;
constexpr int kBulkBytes = kRowBytes - 8;  // a row's 16-byte-aligned part
constexpr int kProducerWarps = 4;
constexpr int kDimBlockBytes = kBlockRows * 128;  // 64 dims of a block's 64 rows as bf16: 8 KB
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kConsumerRegisters = 232, kProducerRegisters = 40;

// The blocks a CTA (blockIdx.z = split) takes of a token's list, as 32-row tiles; the last split
// also takes any blocks beyond the plan (never dropped).
struct TileRange {
  int begin, count;
};
__device__ __forceinline__ int token_blocks(const AttentionToken& k) {
  return (k.n_rows + kBlockRows - 1) / kBlockRows;
}
__device__ __forceinline__ TileRange split_tiles(const AttentionToken& k, int blocks_per_split) {
  const int n_blocks = token_blocks(k);
  const int begin = int(blockIdx.z) * blocks_per_split;
  const int end = blockIdx.z + 1 == gridDim.z ? n_blocks : min(n_blocks, begin + blocks_per_split);
  const int per_block = kBlockRows / kTileRows;
  return {begin * per_block, (end - begin) * per_block};
}

// How many splits of a token hold blocks.
__device__ __forceinline__ int token_splits(const AttentionToken& k, int blocks_per_split,
                                            int splits) {
  return min(splits, (token_blocks(k) + blocks_per_split - 1) / blocks_per_split);
}

// The ring the producer warps fill: kStages tile slots, their full/empty mbarriers, and per
// (stage, row) the row's flags: where it starts in its slot (kRowSkew) and whether it is masked.
struct RowRing {
  uint8_t* slots;
  uint64_t* full;
  uint64_t* empty;
  int32_t* row_flags;
};
constexpr int32_t kRowSkew = 8, kRowMasked = 16;

// What masked rows copy: a row of zeros, 16-byte aligned (one per translation unit).
static __device__ __align__(16) uint8_t zero_kv_row[kSlotBytes];

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Producer warp w < kWarps (the smaller of kStages and the four warps) fills tiles w, w + kWarps,
// ... into stage i % kStages (a multiple of kWarps, so a stage always belongs to one warp and its
// phases stay in order). Lane i looks up row i and
// copies it. The lookups (dependent loads through lists and block tables) of the next tile are
// issued right after this tile's copies, so their latency overlaps the copies in flight. A
// stage is full after 32 arrivals that publish the flags and announce the bulk bytes, the bulk
// bytes, and 32 cp.async arrivals.
template <int kStages>
__device__ __forceinline__ void produce_row_tiles(const SparseAttentionArgs& a,
                                                  const AttentionToken& k, TileRange range,
                                                  const RowRing& ring, int warp, int lane) {
  constexpr int kWarps = kStages < kProducerWarps ? kStages : kProducerWarps;
  static_assert(kStages % kWarps == 0, "a stage must belong to one producer warp");
  if (warp >= kWarps) return;
  const auto lookup = [&](int i) -> const uint8_t* {
    const int32_t j = (range.begin + i) * kTileRows + lane;
    return i < range.count && j < k.n_rows ? attention_row(a, k, j, kRowBytes) : nullptr;
  };
  const uint8_t* next = lookup(warp);
  for (int i = warp; i < range.count; i += kWarps) {
    const uint8_t* row = next ? next : zero_kv_row;
    const int stage = i % kStages;
    const auto skew = int32_t(reinterpret_cast<uintptr_t>(row) & 8u);
    mbarrier_wait(&ring.empty[stage], ((i / kStages) & 1) ^ 1);
    ring.row_flags[stage * kTileRows + lane] = skew | (next ? 0 : kRowMasked);
    mbarrier_arrive_expect_tx(&ring.full[stage], kBulkBytes);
    // Row byte x goes to slot byte skew + x.
    uint8_t* origin = ring.slots + stage * kTileSlotBytes + lane * kSlotBytes + skew;
    const int bulk = skew, tail = skew ? 0 : kBulkBytes;
    bulk_copy_to_shared(origin + bulk, row + bulk, kBulkBytes, &ring.full[stage]);
    cp_async_8(origin + tail, row + tail);
    cp_async_arrive_noinc(&ring.full[stage]);
    next = lookup(i + kWarps);
  }
}

// The kernel's start: thread 0 initialises the ring's barriers (a stage is released by
// `readers` consumer warps), then the warpgroup after the first consumer_threads threads
// gives its registers to the consumers and produces every tile. Returns true in the consumer
// threads, with their registers raised; false in the producers, which are done by then.
template <int kStages>
__device__ __forceinline__ bool split_warp_roles(const SparseAttentionArgs& a,
                                                 const AttentionToken& k, TileRange range,
                                                 const RowRing& ring, uint32_t readers,
                                                 int consumer_threads) {
  const int tid = int(threadIdx.x);
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&ring.full[s], 64);
      mbarrier_init(&ring.empty[s], readers);
    }
    fence_barrier_init();
  }
  __syncthreads();
  if (tid >= consumer_threads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    produce_row_tiles<kStages>(a, k, range, ring, (tid - consumer_threads) / 32, tid % 32);
    return false;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
  return true;
}

// Dims [half · 256, half · 256 + 256) of a tile's 32 rows into rows [first_row, first_row + 32)
// of four swizzled [64 rows][64 dims] bf16 operands kDimBlockBytes apart from `out`, by one
// warpgroup: row = 4·n + warp, 8-dim chunk = lane. `flags` is this lane's row's flags (lane r
// publishes row r's). All eight rows' loads issue together, then before_stores() runs (the
// caller's wait for the operand to be free); a warp whose eight scales are all at most 2^7
// (always, for real activations) takes the one-multiply path.
template <class BeforeStores>
__device__ __forceinline__ void dequantize_half_tile(const uint8_t* slots, int32_t flags,
                                                     uint8_t* out, int first_row, int half,
                                                     int warp, int lane,
                                                     const BeforeStores& before_stores) {
  constexpr int kRowsPerWarp = kTileRows / 4;
  const int dim = half * kHalfDim + lane * 8;
  const bool nope = dim < kNope;
  const int at = nope ? dim : kNope + (dim - kNope) * 2;
  const int scale_at = kNope + 2 * kRope + min(dim, kNope - 1) / 64;
  uint2 lo[kRowsPerWarp], hi[kRowsPerWarp];
  uint8_t scale[kRowsPerWarp];
  bool large = false;
#pragma unroll
  for (int n = 0; n < kRowsPerWarp; ++n) {
    const int r = 4 * n + warp;
    const uint8_t* row = slots + r * kSlotBytes + (__shfl_sync(0xffffffffu, flags, r) & kRowSkew);
    lo[n] = *reinterpret_cast<const uint2*>(row + at);
    hi[n] = nope ? make_uint2(0u, 0u) : *reinterpret_cast<const uint2*>(row + at + 8);
    scale[n] = row[scale_at];
    large |= scale[n] > 134;
  }
  before_stores();
  const auto store = [&](auto dequant) {
#pragma unroll
    for (int n = 0; n < kRowsPerWarp; ++n) {
      const int r = 4 * n + warp;
      const uint4 v =
          nope ? dequant(lo[n], scale[n]) : make_uint4(lo[n].x, lo[n].y, hi[n].x, hi[n].y);
      *reinterpret_cast<uint4*>(out + (lane / 8) * kDimBlockBytes +
                                swizzled_offset(first_row + r, (lane % 8) * 8)) = v;
    }
  };
  if (__any_sync(0xffffffffu, large)) {
    store([](uint2 codes, uint8_t code) { return dequant_e4m3x8(codes, code); });
  } else {
    store([](uint2 codes, uint8_t code) { return dequant_e4m3x8_moderate_scale(codes, code); });
  }
}

// 2^x with one MUFU instruction (relative error ~2^-22, far below P's bf16 rounding).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// P = bf16(2^(s − base)) of a thread's 32 scores (pairs of adjacent block rows, head h = (i >> 1)
// & 1) and the block's row sums per head in fp32; posted(i, bits) sees each pair as it is made.
template <class Posted>
__device__ __forceinline__ void exponentiate_block(const float (&s)[32], const float (&base)[2],
                                                   uint32_t (&p)[16], float (&block_sum)[2],
                                                   const Posted& posted) {
#pragma unroll
  for (int i = 0; i < 32; i += 2) {
    const int h = (i >> 1) & 1;
    const float p0 = exp2_approx(s[i] - base[h]), p1 = exp2_approx(s[i + 1] - base[h]);
    block_sum[h] += p0 + p1;
    p[i / 2] = bf16x2_bits(p0, p1);
    posted(i, p[i / 2]);
  }
}

// O += P·V over a block's 64 rows, one commit group: four k16 steps, P's A fragments from
// registers (p[4kk .. 4kk + 3] for step kk), V MN-major from v_descriptor.
__device__ __forceinline__ void add_pv_from_registers(float (&o)[128], const uint32_t (&p)[16],
                                                      uint64_t v_descriptor) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kBlockRows / 16; ++kk) {
    const uint32_t pa[4] = {p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3]};
    wgmma_m64n256k16_rs_mn(o, pa, v_descriptor + uint64_t((kk * 16 * 128) >> 4), true);
  }
  wgmma_commit();
}

// A block's step of the online softmax for a thread's two heads (rows row0, row0 + 8): the
// block's maxima (this thread's, reduced over the four threads of a row) grow the running maxima
// m; base is what the scores' exponentials subtract, factor what rescales O and the row sums.
__device__ __forceinline__ void grow_running_maxima(float (&block_max)[2], float (&m)[2],
                                                    float (&base)[2], float (&factor)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    block_max[h] = fmaxf(block_max[h], __shfl_xor_sync(0xffffffffu, block_max[h], 1));
    block_max[h] = fmaxf(block_max[h], __shfl_xor_sync(0xffffffffu, block_max[h], 2));
    const float grown = fmaxf(m[h], block_max[h]);
    // While every row so far is masked the maximum stays -inf; 0 keeps 2^(s - base) at 0.
    base[h] = grown == -INFINITY ? 0.0f : grown;
    factor[h] = grown == m[h] ? 1.0f : exp2_approx(m[h] - base[h]);
    m[h] = grown;
  }
}

// A split's unnormalised partials (AttentionWorkspace) from a consumer thread: its O fragment
// (o[2j], o[2j + 1]: head row `base` + 8·(j & 1), dims col0 + 8·(j / 2) and the next) and, where
// `stats`, its two heads' running maxima and row sums.
__device__ __forceinline__ void store_split_partials(const AttentionWorkspace& ws, int64_t base,
                                                     int col0, const float (&o)[128],
                                                     const float (&m)[2], const float (&l)[2],
                                                     bool stats) {
#pragma unroll
  for (int j = 0; j < 64; ++j) {
    const int64_t row = base + 8 * (j & 1);
    *reinterpret_cast<float2*>(ws.outputs + row * kDim + col0 + 8 * (j / 2)) =
        make_float2(o[2 * j], o[2 * j + 1]);
  }
  if (stats) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      ws.maxima[base + 8 * h] = m[h];
      ws.sums[base + 8 * h] = l[h];
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::sm90_attention
