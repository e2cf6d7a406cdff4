// Sparse attention on sm_90a from dense (bf16) rows, for prefill: FlashMLA's division of the
// work. Each of two consumer warpgroups takes every other 64-row block whole (S = Q·Kᵀ over all
// 512 dims), so one's softmax overlaps the other's wgmma. The reference's block order is kept:
// the running maximum passes from the even block (warpgroup 0) to the odd one (warpgroup 1) and
// back through shared memory, each posts its P (bf16) there, and each adds P·V of both blocks of
// a pair to its half of the dims, O rescaled before each block's P·V, P rounded at its own
// block's maximum. A producer warpgroup fills one of two block buffers a block: a block that is
// one run of consecutive rows (window; HCA entries) by bulk tensor copies, others (CSA's chosen
// entries) row by row (1 KB each) with cp.async; HCA entries may come from the paged bf16 copies
// (DenseRowsView::entry_pool), a page a block. One warpgroup's cp.async moves a gathered block
// more slowly than the consumers use it, so the consumer warpgroup of a block's buffer copies its
// second 32 rows, while it would otherwise wait (warpgroup 1 before its odd block, warpgroup 0
// during the odd block's P·V). One CTA per (64 heads, token, split): with several splits each
// writes its partials and attention_split_combine merges them, as for the main kernel.
#include "core/error.h"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_sm90_tiles.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"
#include "cuda/runtime/tensor_map.h"

namespace dsv4::cuda {
namespace {

using namespace sm90_attention;

constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 128;
constexpr int kOperandBytes = (kDim / 64) * kDimBlockBytes;  // Q or a block, all dims: 64 KB

// Shared memory (the dynamic array is 1024-byte aligned): Q; the two block buffers; P of each
// warpgroup for two pairs in turn; per pair parity and warpgroup the running maximum and the
// block's rescale factor per head; the row sums; each buffer's valid-row mask (16 bits per
// gathering warp); the buffers' barriers.
constexpr int kQOffset = 0;
constexpr int kBufferOffset = kQOffset + kOperandBytes;
constexpr int kPOffset = kBufferOffset + 2 * kOperandBytes;
constexpr int kMaxOffset = kPOffset + 4 * kDimBlockBytes;
constexpr int kSumOffset = kMaxOffset + 4 * 2 * kHeads * 4;
constexpr int kValidOffset = kSumOffset + 2 * kHeads * 4;
constexpr int kBarrierOffset = kValidOffset + 2 * 4 * 2;
constexpr int kSharedBytes = kBarrierOffset + 5 * 8;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

// q or the output, [tokens · heads][kDim] bf16, in boxes of one CTA's 64 heads × 64 dims: the
// layout of the Q operand and of the staged output.
CUtensorMap queries_tensor_map(const uint16_t* base, const SparseAttentionArgs& a) {
  return tensor_map_bf16_swizzle128(base, int64_t(a.batch.tokens) * a.heads, kDim, kHeads);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kScoreFloats = kHeads * kBlockRows / 128;
// Named barriers: warpgroup 0's block posted; warpgroup 1's block posted; row sums; each
// warpgroup's output staged.
constexpr int kEvenPosted = 1, kOddPosted = 2, kSumsPosted = 3, kOutputStaged = 4;  // + W
constexpr int kEvenMaximaPosted = 6;

struct Buffers {
  uint8_t* smem;
  uint64_t* full;     // [2]: a block's rows landed
  uint64_t* empty;    // [2]: both warpgroups are done with the block
  uint64_t* queries;  // the token's Q landed
};

// The token's Q for 64 heads (rows t · heads + head0 .. + 63 of q_map, queries_tensor_map) into
// the swizzled operand q_s by bulk tensor copies, issued by one thread, landing on `barrier`.
__device__ __forceinline__ void load_queries_by_tensor_copies(const CUtensorMap* q_map,
                                                              int32_t q_row, uint8_t* q_s,
                                                              uint64_t* barrier) {
  mbarrier_arrive_expect_tx(barrier, kHeads * kDim * 2);
#pragma unroll
  for (int c = 0; c < kDim / 64; ++c) {
    tensor_copy_2d_to_shared(q_s + c * kDimBlockBytes, q_map, 64 * c, q_row, barrier);
  }
}

// Whether block b of the token's list is one run of consecutive rows (inside the window part, or
// inside the entries part when every entry is attended), and if so its first row, of the region
// or (pooled) of the bf16 entry pool, where the run is one page. The rows of a run past the
// token's last are masked; they hold finite values (later rows of the region, the next region's
// zeroed rows, zeros past the map's end, or a page's unwritten rows, zeroed by KvCache). A block
// wholly past the token's entries (the last pair's second) reads its last page again.
__device__ __forceinline__ bool block_is_run(const SparseAttentionArgs& a, int b) {
  const int32_t j = b * kBlockRows;
  return j + kBlockRows <= a.window || (j >= a.window && a.source == CompressedSource::kAll);
}
__device__ __forceinline__ bool block_run(const SparseAttentionArgs& a, const AttentionToken& k,
                                          int b, int64_t& first_row, bool& pooled) {
  if (!block_is_run(a, b)) return false;
  const int32_t j = b * kBlockRows;
  const int64_t base = a.dense.base[k.t];
  pooled = false;
  if (j + kBlockRows <= a.window) {
    first_row = dense_window_row(base, a, k, k.pos - k.n_window + 1 + j);
    return true;
  }
  const PagedRowsView& pool = a.dense.entry_pool;
  if (pool.pool) {
    const int32_t page = min(j - a.window, k.n_rows - a.window - 1) / kBlockRows;
    first_row = int64_t(pool.table[k.slot * pool.table_stride + page]) * kBlockRows;
    pooled = true;
  } else {
    first_row = dense_entry_row(base, a, k, j - a.window);
  }
  return true;
}

// Rows first_row .. first_row + count - 1 of a gathered (not run) block into its buffer by one
// warp, row by row with cp.async (two 512-byte halves a row, lane = 16-byte chunk), lane i's
// `index` the dense row of row first_row + i (−1: zeros).
__device__ __forceinline__ void copy_gathered_rows(const SparseAttentionArgs& a, int64_t index,
                                                   int first_row, int count, uint8_t* block,
                                                   int lane) {
#pragma unroll 1
  for (int i = 0; i < count; ++i) {
    const int64_t row_index = __shfl_sync(0xffffffffu, index, i);
    const int r = first_row + i;
    const uint16_t* row = a.dense.rows + (row_index >= 0 ? row_index : 0) * kDim;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = 32 * h + lane;
      cp_async_16_or_zero(
          shared_address(block + (c / 8) * kDimBlockBytes + swizzled_offset(r, (c % 8) * 8)),
          row + 8 * c, row_index >= 0);
    }
  }
}

// The block row that lane l < 16 of gathering warp w looks up (and posts the valid bit of, bit
// l of the warp's word): rows 8w + l (l < 8, which the warp copies) and 32 + 8w + l − 8 (which the
// consumer warpgroup of the block's buffer copies).
__device__ __forceinline__ int looked_up_row(int warp, int lane) {
  return lane < 8 ? 8 * warp + lane : kBlockRows / 2 + 8 * warp + lane - 8;
}

// Blocks first_block + b (b < 2 · pairs; past the token's blocks: every row masked) into buffer
// b % 2 by the gathering warpgroup: a run as 8 bulk tensor copies (64 rows × 64 dims each) issued
// by thread 0, other blocks row by row with cp.async, warp w taking rows 8w .. 8w + 7 (the
// consumers take the rest, help_gather_block), each thread's copies arriving on the full barrier
// as they land (so the next block's copies issue meanwhile; the consumers fence the proxies).
// Each warp's lane 0 posts the valid bits of the rows it looked up (looked_up_row) and arrives
// once more.
__device__ __forceinline__ void gather_blocks(const SparseAttentionArgs& a, const AttentionToken& k,
                                              const CUtensorMap* rows_map,
                                              const CUtensorMap* pool_map, int first_block,
                                              int pairs, const Buffers& buf, int warp, int lane) {
  for (int b = 0; b < 2 * pairs; ++b) {
    const int which = b % 2, use = b / 2;
    const int block_index = first_block + b;
    int64_t index = -1;
    if (lane < 16) {
      index = dense_row_index(a, k, block_index * kBlockRows + looked_up_row(warp, lane));
    }
    const uint32_t valid = __ballot_sync(0xffffffffu, index >= 0) & 0xffffu;
    int64_t first_row = 0;
    bool pooled = false;
    const bool run = block_run(a, k, block_index, first_row, pooled);
    mbarrier_wait(&buf.empty[which], (use & 1) ^ 1);
    uint8_t* block = buf.smem + kBufferOffset + which * kOperandBytes;
    if (lane == 0) {
      reinterpret_cast<uint16_t*>(buf.smem + kValidOffset)[which * 4 + warp] = uint16_t(valid);
      mbarrier_arrive(&buf.full[which]);
    }
    if (run) {
      if (warp == 0 && lane == 0) {
        mbarrier_arrive_expect_tx(&buf.full[which], kOperandBytes);
#pragma unroll
        for (int c = 0; c < kDim / 64; ++c) {
          tensor_copy_2d_to_shared(block + c * kDimBlockBytes, pooled ? pool_map : rows_map, 64 * c,
                                   int32_t(first_row), &buf.full[which]);
        }
      } else {
        mbarrier_arrive(&buf.full[which]);
      }
      continue;
    }
    copy_gathered_rows(a, index, 8 * warp, 8, block, lane);
    cp_async_arrive_noinc(&buf.full[which]);
  }
}

// Only lists (CSA) make gathered blocks (past the window); with other sources every block is a
// run, the producer's alone, and the consumers do not help.
__device__ __forceinline__ bool blocks_shared(const SparseAttentionArgs& a) {
  return a.source == CompressedSource::kList;
}

// A consumer warpgroup's share of block `block_index`, use `use` of its buffer `which`: rows
// 32 + 8w .. 32 + 8w + 7 by warp w once the buffer is free (a run is the producer's alone), each
// thread arriving on the full barrier.
__device__ __forceinline__ void help_gather_block(const SparseAttentionArgs& a,
                                                  const AttentionToken& k, int block_index,
                                                  int which, int use, const Buffers& buf, int warp,
                                                  int lane) {
  mbarrier_wait(&buf.empty[which], (use & 1) ^ 1);
  if (block_is_run(a, block_index)) {
    mbarrier_arrive(&buf.full[which]);
    return;
  }
  const int first_row = kBlockRows / 2 + 8 * warp;
  int64_t index = -1;
  if (lane < 8) index = dense_row_index(a, k, block_index * kBlockRows + first_row + lane);
  copy_gathered_rows(a, index, first_row, 8, buf.smem + kBufferOffset + which * kOperandBytes,
                     lane);
  cp_async_arrive_noinc(&buf.full[which]);
}

__device__ __forceinline__ void zero_accumulators(float (&o)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("mov.b32 %0, 0;\n" : "=f"(o[i]));
}

// Warpgroup W: blocks 2j + W, dims [256 W, 256 W + 256) of O.
template <int W>
__device__ __forceinline__ void attend_blocks(const SparseAttentionArgs& a, const AttentionToken& k,
                                              int first_block, int pairs, int head0,
                                              const Buffers& buf, const CUtensorMap* out_map) {
  uint8_t* smem = buf.smem;
  const int in_group = int(threadIdx.x) % 128, warp = in_group / 32, lane = in_group % 32;
  const int row0 = 16 * warp + lane / 4;  // this thread's heads: row0 and row0 + 8
  mbarrier_wait(buf.queries, 0);
  const uint64_t q_descriptor = smem_descriptor(smem + kQOffset, 16, 1024);
  auto* maxima = reinterpret_cast<float*>(smem + kMaxOffset);  // [parity][W][max 64, factor 64]
  const float scale_log2 = a.scale * kLog2e;

  float o[128];
  zero_accumulators(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float s[kScoreFloats];
  uint32_t p[kScoreFloats / 2];
  const auto rescale = [&](const float(&f)[2]) {
    wgmma_fence_operands(o);
    if (f[0] != 1.0f || f[1] != 1.0f) {
#pragma unroll
      for (int i = 0; i < 128; ++i) o[i] *= f[(i >> 1) & 1];
    }
  };
  // V of buffer `which`, this warpgroup's dims, MN-major.
  const auto v_descriptor = [&](int which) {
    uint64_t d = smem_descriptor(
        smem + kBufferOffset + which * kOperandBytes + W * kOperandBytes / 2, kDimBlockBytes, 1024);
    asm volatile("" : "+l"(d));
    return d;
  };
  const auto add_pv_shared = [&](int which, const uint8_t* posted) {
    const uint64_t vd = v_descriptor(which);
    uint64_t pd = smem_descriptor(posted, 16, 1024);
    asm volatile("" : "+l"(pd));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockRows / 16; ++kk) {
      wgmma_m64n256k16_ss_mn(o, pd + uint64_t((kk * 32) >> 4), vd + uint64_t((kk * 16 * 128) >> 4));
    }
    wgmma_commit();
  };
  const auto release = [&](int which) {
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&buf.empty[which]);
  };

  const bool help = blocks_shared(a);
  if (W == 0 && help) help_gather_block(a, k, first_block, 0, 0, buf, warp, lane);
#pragma unroll 1
  for (int j = 0; j < pairs; ++j) {
    const int parity = j & 1;
    if (W == 1 && help) help_gather_block(a, k, first_block + 2 * j + 1, 1, j, buf, warp, lane);
    mbarrier_wait(&buf.full[W], parity);
    fence_proxy_async_shared();  // the gatherer's cp.async writes, read by wgmma
    // Bit r: block row r is valid (the gathering warps' words, in looked_up_row's order).
    const auto* valid_bits = reinterpret_cast<const uint16_t*>(smem + kValidOffset) + W * 4;
    uint64_t valid = 0;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const uint64_t word = valid_bits[w];
      valid |= (word & 0xffu) << (8 * w) | (word >> 8) << (kBlockRows / 2 + 8 * w);
    }
    float even_factor[2] = {1.0f, 1.0f};
    {
      uint64_t qd = q_descriptor;
      uint64_t kd = smem_descriptor(smem + kBufferOffset + W * kOperandBytes, 16, 1024);
      asm volatile("" : "+l"(qd), "+l"(kd));
      wgmma_fence();
      wgmma_m64n64k16_bf16_ss_first(s, qd, kd);
#pragma unroll
      for (int step = 1; step < 32; ++step) {
        const uint64_t at = uint64_t(((step / 4) * kDimBlockBytes + (step % 4) * 32) >> 4);
        wgmma_m64n64k16_bf16_ss(s, qd + at, kd + at, true);
      }
      wgmma_commit();
      wgmma_wait<0>();
      if constexpr (W == 1) {
        // Warpgroup 0 posts the even block's maxima before its P, so this block's maxima can
        // grow while that P is made. (O must not be touched while the scores' wgmma is in
        // flight: ptxas then serializes every wgmma, C7518.)
        named_barrier_sync(kEvenMaximaPosted, kConsumerThreads);
        const float* even = maxima + (parity * 2) * 2 * kHeads;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          m[h] = even[row0 + 8 * h];
          even_factor[h] = even[kHeads + row0 + 8 * h];
        }
        rescale(even_factor);
      }
      wgmma_fence_operands(s);
    }
    // s[4c + e]: head row0 (+8 for e >= 2), block row 8c + 2·(lane % 4) + (e & 1).
    float block_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < kScoreFloats; ++i) {
      const int r = 8 * (i / 4) + 2 * (lane % 4) + (i & 1);
      s[i] = (valid >> r) & 1u ? s[i] * scale_log2 : -INFINITY;
      block_max[(i >> 1) & 1] = fmaxf(block_max[(i >> 1) & 1], s[i]);
    }
    float base[2], factor[2];
    grow_running_maxima(block_max, m, base, factor);
    if (lane % 4 == 0) {
      float* out = maxima + (parity * 2 + W) * 2 * kHeads;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        out[row0 + 8 * h] = m[h];
        out[kHeads + row0 + 8 * h] = factor[h];
      }
    }
    if constexpr (W == 0) {
      named_barrier_arrive(kEvenMaximaPosted, kConsumerThreads);
    } else {
      // The even block's P·V runs during this block's exponentials, so the even buffer is free
      // for the gatherer sooner.
      named_barrier_sync(kEvenPosted, kConsumerThreads);
      add_pv_shared(0, smem + kPOffset + (parity * 2) * kDimBlockBytes);
    }
    float block_sum[2] = {0.0f, 0.0f};
    uint8_t* mine = smem + kPOffset + (parity * 2 + W) * kDimBlockBytes;
    exponentiate_block(s, base, p, block_sum, [&](int i, uint32_t bits) {
      const int h = (i >> 1) & 1;
      *reinterpret_cast<uint32_t*>(
          mine + swizzled_offset(row0 + 8 * h, 8 * (i / 4) + 2 * (lane % 4))) = bits;
    });
    fence_proxy_async_shared();  // P, read by the partner's wgmma
    named_barrier_arrive(W == 0 ? kEvenPosted : kOddPosted, kConsumerThreads);
    if (W == 0) {
#pragma unroll
      for (int h = 0; h < 2; ++h) l[h] = l[h] * factor[h] + block_sum[h];
      rescale(factor);
      add_pv_from_registers(o, p, v_descriptor(0));
      named_barrier_sync(kOddPosted, kConsumerThreads);
      const float* odd = maxima + (parity * 2 + 1) * 2 * kHeads;
      float odd_factor[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        m[h] = odd[row0 + 8 * h];
        odd_factor[h] = odd[kHeads + row0 + 8 * h];
        l[h] *= odd_factor[h];
      }
      wgmma_wait<0>();
      release(0);
      rescale(odd_factor);
      add_pv_shared(1, smem + kPOffset + (parity * 2 + 1) * kDimBlockBytes);
      // The next even block's share while the odd block's P·V runs.
      if (help && j + 1 < pairs) {
        help_gather_block(a, k, first_block + 2 * (j + 1), 0, j + 1, buf, warp, lane);
      }
    } else {
#pragma unroll
      for (int h = 0; h < 2; ++h) l[h] = (l[h] * even_factor[h]) * factor[h] + block_sum[h];
      wgmma_wait<0>();
      release(0);
      rescale(factor);
      add_pv_from_registers(o, p, v_descriptor(1));
    }
    wgmma_wait<0>();
    release(1);
  }
  wgmma_fence_operands(o);

  // The row sums of both warpgroups, then o = O / (l + exp(sink − m)).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  auto* sums = reinterpret_cast<float*>(smem + kSumOffset);
  if (lane % 4 == 0) {
    sums[W * kHeads + row0] = l[0];
    sums[W * kHeads + row0 + 8] = l[1];
  }
  named_barrier_sync(kSumsPosted, kConsumerThreads);
  float total[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) total[h] = l[h] + sums[(1 - W) * kHeads + row0 + 8 * h];
  if (gridDim.z > 1) {
    const AttentionWorkspace ws(a.workspace, int32_t(gridDim.y), a.heads, int32_t(gridDim.z));
    const int64_t base = (int64_t(k.t) * gridDim.z + blockIdx.z) * a.heads + head0 + row0;
    store_split_partials(ws, base, W * (kDim / 2) + 2 * (lane % 4), o, m, total,
                         W == 0 && lane % 4 == 0);
    return;
  }
  float den[2], reciprocal[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    den[h] = total[h] + exp2f(a.sink[head0 + row0 + 8 * h] * kLog2e - m[h]);
    reciprocal[h] = __frcp_rn(den[h]);
  }
  // Staged where Q was (both loops are done), in Q's layout, then stored by bulk tensor copies:
  // coalesced, and no thread waits for its stores.
  uint8_t* staged = smem + kQOffset;
#pragma unroll
  for (int j = 0; j < 64; ++j) {
    const int h = j & 1, col = W * (kDim / 2) + 8 * (j / 2) + 2 * (lane % 4);
    const float v0 = divide_rn(o[2 * j], den[h], reciprocal[h]);
    const float v1 = divide_rn(o[2 * j + 1], den[h], reciprocal[h]);
    *reinterpret_cast<uint32_t*>(staged + (col / 64) * kDimBlockBytes +
                                 swizzled_offset(row0 + 8 * h, col % 64)) = bf16x2_bits(v0, v1);
  }
  fence_proxy_async_shared();  // the staged output, read by the bulk stores
  named_barrier_sync(kOutputStaged + W, 128);
  if (in_group == 0) {
    const int32_t out_row = k.t * a.heads + head0;
#pragma unroll
    for (int c = 4 * W; c < 4 * W + 4; ++c) {
      tensor_store_2d_from_shared(out_map, 64 * c, out_row, staged + c * kDimBlockBytes);
    }
    bulk_commit_group();
    bulk_wait_shared_read();
  }
}

#endif  // __CUDA_ARCH__ >= 900

__global__ void __launch_bounds__(kThreads, 1)
    sparse_attention_sm90_dense(const SparseAttentionArgs a, const AttentionPlan plan,
                                const __grid_constant__ CUtensorMap rows_map,
                                const __grid_constant__ CUtensorMap pool_map,
                                const __grid_constant__ CUtensorMap q_map,
                                const __grid_constant__ CUtensorMap out_map) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(1024) uint8_t smem[];
  if ((shared_address(smem) & 1023u) != 0) __trap();  // the swizzled operands need it
  const AttentionToken k = attention_token(a, int32_t(blockIdx.y));
  // This split's blocks (an even count but for the last split's end): whole pairs.
  const int n_blocks = token_blocks(k), first_block = int(blockIdx.z) * plan.blocks_per_split;
  const int end_block =
      blockIdx.z + 1 == gridDim.z ? n_blocks : min(n_blocks, first_block + plan.blocks_per_split);
  if (first_block >= end_block) return;  // this token has fewer splits
  const int pairs = (end_block - first_block + 1) / 2;
  const int tid = int(threadIdx.x);
  const int head0 = int(blockIdx.x) * kHeads;
  auto* barriers = reinterpret_cast<uint64_t*>(smem + kBarrierOffset);
  const Buffers buf{smem, barriers, barriers + 2, barriers + 4};
  if (tid == 0) {
    for (int i = 0; i < 2; ++i) {
      // The gatherers' copies (with lists also the buffer's consumer warpgroup's), each warp's
      // valid bits.
      mbarrier_init(&buf.full[i], 128 + 4 + (blocks_shared(a) ? 128 : 0));
      mbarrier_init(&buf.empty[i], 8);  // the consumers' warps
    }
    mbarrier_init(buf.queries, 1);
    fence_barrier_init();
    load_queries_by_tensor_copies(&q_map, k.t * a.heads + head0, smem + kQOffset, buf.queries);
  }
  __syncthreads();
  // Each role ends in its own code: a shared tail would make ptxas drop the setmaxnreg budgets.
  if (tid >= kConsumerThreads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    gather_blocks(a, k, &rows_map, &pool_map, first_block, pairs, buf,
                  (tid - kConsumerThreads) / 32, tid % 32);
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
  if (tid < 128) {
    attend_blocks<0>(a, k, first_block, pairs, head0, buf, &out_map);
    return;
  }
  attend_blocks<1>(a, k, first_block, pairs, head0, buf, &out_map);
#else
  __trap();
#endif
}

}  // namespace

void launch_sparse_attention_sm90_dense(const SparseAttentionArgs& a, const AttentionPlan& plan,
                                        cudaStream_t stream) {
  static const bool configured = [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        sparse_attention_sm90_dense, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    return true;
  }();
  (void)configured;
  const CUtensorMap rows_map =
      tensor_map_bf16_swizzle128(a.dense.rows, a.dense.row_count, kDim, kBlockRows);
  // Without a pool its map is never read: the rows' map stands in.
  const CUtensorMap pool_map =
      a.dense.entry_pool.pool
          ? tensor_map_bf16_swizzle128(a.dense.entry_pool.pool, a.dense.entry_pool_rows, kDim,
                                       kBlockRows)
          : rows_map;
  const CUtensorMap q_map = queries_tensor_map(a.q, a);
  const CUtensorMap out_map = queries_tensor_map(a.out, a);
  launch_dense_rows_pass(a, stream);
  // A token's head tiles side by side in the grid: they run together and read its rows from HBM
  // once (apart, Pro's two tiles read each bf16 row twice: HBM-bound at long contexts).
  if (a.batch.tokens > 65535) {
    fail("sparse attention from dense rows: {} tokens in a step, at most 65535", a.batch.tokens);
  }
  launch_dependent(
      sparse_attention_sm90_dense,
      dim3(unsigned(a.heads / kHeads), unsigned(a.batch.tokens), unsigned(plan.splits)), kThreads,
      kSharedBytes, stream, a, plan, rows_map, pool_map, q_map, out_map);
  if (plan.splits > 1) launch_attention_split_combine(a, plan, stream);
}

}  // namespace dsv4::cuda
