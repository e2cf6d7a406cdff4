// Indexer scores: one CTA per (token, range of keys), two CTAs an SM, 6 warps that each stream
// groups of 32 keys on their own. A group's rows (consecutive in one page of the cache) are
// copied raw into the warp's ring of shared buffers with cp.async, several groups ahead; each
// lane decodes one key from FP4 to bf16 (exact), the warp multiplies the token's 64 heads by the
// 32 keys on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators; exact for FP4-valued
// inputs), turns the products into the terms bf16(relu(bf16(q·k)) · w) with bf16x2 instructions
// (one rounding each, as the CPU rounds the exact fp32 product), and each lane sums its key's
// terms in head order, as the CPU does, so the bf16 scores are bit-identical. Only the token's Q
// is shared by the CTA's warps. The kernel is bound by latency: registers (168) and shared memory
// (a ring of three groups and one work area a warp, the terms as bf16) are sized for two CTAs an
// SM. Measured (H200): bench/RESULTS.md, "nineteenth session" and "twenty-second session".
#include <algorithm>
#include <mutex>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kWarps = 6;
constexpr int kCtasPerSm = 2;  // 12 warps an SM: with 8 in one CTA, 54% of cycles issued nothing
constexpr int kThreads = 32 * kWarps;
constexpr int kDim = 128;  // DeepSeek-V4's index_head_dim, the only one the kernel takes
constexpr int kKeyBytes = kDim / 2 + kDim / 32;      // 68: packed e2m1, then four ue8m0 scales
constexpr int kGroupKeys = 32;                       // one per lane
constexpr int kGroupBytes = kGroupKeys * kKeyBytes;  // 2176, 16-byte aligned in the pool
constexpr int kStages = 3;  // groups in flight per warp, the current one included
constexpr int kMaxHeads = 64;
constexpr int kRowStride = kDim + 8;         // bf16 between rows of Q and of the decoded keys
constexpr int kTermStride = kGroupKeys + 8;  // bf16 between heads of the terms (conflict-free)

// Shared memory: Q [kMaxHeads][kRowStride] bf16; the weights as bf16 pairs (w, w); per warp its
// ring of raw groups and one region that holds the decoded keys, then the terms.
constexpr int kQBytes = kMaxHeads * kRowStride * 2;
constexpr int kWeightBytes = kMaxHeads * 4;
constexpr int kKeysBytes = kGroupKeys * kRowStride * 2;
constexpr int kTermsBytes = kMaxHeads * kTermStride * 2;
constexpr int kWorkBytes = kKeysBytes > kTermsBytes ? kKeysBytes : kTermsBytes;
constexpr int kWarpBytes = kStages * kGroupBytes + kWorkBytes;
constexpr int kSharedBytes = kQBytes + kWeightBytes + kWarps * kWarpBytes;
static_assert(kCtasPerSm * (kSharedBytes + 1024) <= 228 * 1024, "shared memory");
static_assert(kGroupBytes % 16 == 0 && kWarpBytes % 16 == 0 && kQBytes % 16 == 0, "alignment");

// The keys of one token that this warp scores: groups first, first + kWarps, ... below end.
struct WarpGroups {
  const IndexerArgs* a;
  int32_t slot, first, count;

  // Group i's rows (all in one block of the cache: block_rows is a multiple of 32).
  __device__ __forceinline__ const uint8_t* rows(int32_t i) const {
    const int32_t key = (first + i * kWarps) * kGroupKeys;
    const int32_t block = a->keys.table[slot * a->keys.table_stride + key / a->keys.block_rows];
    return a->keys.pool +
           (int64_t(block) * a->keys.block_rows + key % a->keys.block_rows) * int64_t(kKeyBytes);
  }
};

// Group i's raw rows (src, null past the warp's groups) into ring stage i % kStages; one commit
// group per call either way, so the waits count stages.
__device__ __forceinline__ void copy_group(const uint8_t* src, int32_t i, uint8_t* ring, int lane) {
  if (src) {
    const uint32_t dst = shared_address(ring + (i % kStages) * kGroupBytes);
    for (int c = lane; c < kGroupBytes / 16; c += 32) cp_async_16(dst + 16 * c, src + 16 * c);
  }
  cp_async_commit();
}

// The lane's key of a raw group (68 bytes at stride 68: conflict-free words) as 128 bf16. Scales
// up to 2^1 (codes up to 128, what keys normally have) take one multiply a value pair.
__device__ __forceinline__ void decode_key(const uint8_t* raw, uint16_t* keys, int lane) {
  const uint8_t* row = raw + lane * kKeyBytes;
  const uint32_t scales = *reinterpret_cast<const uint32_t*>(row + kDim / 2);
  uint16_t* out = keys + lane * kRowStride;
  uint32_t packed[kDim / 8];
#pragma unroll
  for (int u = 0; u < kDim / 8; ++u) packed[u] = *reinterpret_cast<const uint32_t*>(row + 4 * u);
  const auto decode = [&](auto dequantize) {
#pragma unroll
    for (int u = 0; u < kDim / 8; ++u) {
      *reinterpret_cast<uint4*>(out + 8 * u) =
          dequantize(packed[u], uint8_t(scales >> (8 * (u / 4))));
    }
  };
  if ((scales & 0x80808080u) == 0) {
    decode(
        [](uint32_t packed, uint8_t code) { return dequant_e2m1x8_moderate_scale(packed, code); });
  } else {
    decode([](uint32_t packed, uint8_t code) { return dequant_e2m1x8(packed, code); });
  }
}

// S[head][key] = q_head · k_key for the group's 32 keys (4 tiles of 8) and all 64 head rows of Q
// (4 tiles of 16; rows past the token's heads are zeros): a fixed shape, so the tensor core
// instructions of different tiles interleave.
__device__ __forceinline__ void multiply_group(const uint16_t* q_s, const uint16_t* keys, int lane,
                                               float (&acc)[4][4][4]) {
#pragma unroll
  for (int m = 0; m < 4; ++m) {
#pragma unroll
    for (int n = 0; n < 4; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[m][n][e] = 0.0f;
    }
  }
  const uint16_t* b_ptr =
      keys + ((lane >> 4) * 8 + (lane & 7)) * kRowStride + ((lane >> 3) & 1) * 8;
  const uint16_t* a_ptr = q_s + (lane & 15) * kRowStride + (lane >> 4) * 8;
#pragma unroll
  for (int kk = 0; kk < kDim; kk += 16) {
    uint32_t b[2][4];
    ldmatrix_x4(b[0], b_ptr + kk);
    ldmatrix_x4(b[1], b_ptr + 16 * kRowStride + kk);
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      uint32_t a[4];
      ldmatrix_x4(a, a_ptr + m * 16 * kRowStride + kk);
#pragma unroll
      for (int n = 0; n < 4; ++n)
        mma_bf16_16816(acc[m][n], a, b[n / 2][2 * (n % 2)], b[n / 2][2 * (n % 2) + 1]);
    }
  }
}

// terms[head][key] = bf16(relu(bf16(S)) · w_head). bf16x2 instructions round once, as the CPU's
// round_bf16 of the fp32 product does (exact in fp32 but for products below 2^-126).
__device__ __forceinline__ void store_terms(const float (&acc)[4][4][4], const uint32_t* weights,
                                            int lane, uint16_t* terms) {
  const __nv_bfloat162 zero = __float2bfloat162_rn(0.0f);
#pragma unroll
  for (int m = 0; m < 4; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int head = m * 16 + (lane >> 2) + 8 * half;
      const uint32_t w_bits = weights[head];
      const __nv_bfloat162 w = *reinterpret_cast<const __nv_bfloat162*>(&w_bits);
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        const __nv_bfloat162 logit =
            __floats2bfloat162_rn(acc[m][n][2 * half], acc[m][n][2 * half + 1]);
        const __nv_bfloat162 term = __hmul2(__hmax2(logit, zero), w);
        *reinterpret_cast<__nv_bfloat162*>(terms + head * kTermStride + 8 * n + 2 * (lane & 3)) =
            term;
      }
    }
  }
}

// CTA (token blockIdx.x, share blockIdx.y of gridDim.y of the token's visible groups): Q and the
// weights loaded once, then each warp streams its groups through its ring. The shares come from
// the token's own visible count, so a step at short context spreads as evenly as a long one.
__global__ void __launch_bounds__(kThreads, kCtasPerSm) indexer_scores_kernel(const IndexerArgs a) {
  wait_for_previous_kernel();
  extern __shared__ __align__(16) uint8_t smem[];
  auto* q_s = reinterpret_cast<uint16_t*>(smem);
  auto* weights = reinterpret_cast<uint32_t*>(smem + kQBytes);
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int32_t t = int32_t(blockIdx.x);
  const int32_t visible = min((a.batch.position[t] + 1) / a.ratio, a.max_visible);
  const int32_t groups = (visible + kGroupKeys - 1) / kGroupKeys;
  const int32_t share = (groups + int32_t(gridDim.y) - 1) / int32_t(gridDim.y);
  const int32_t cta_first = int32_t(blockIdx.y) * share;
  if (cta_first >= groups) return;
  const int32_t cta_end = min(cta_first + share, groups);
  const int heads = a.heads;

  for (int i = tid; i < kMaxHeads * (kDim / 8); i += kThreads) {
    const int h = i / (kDim / 8), u = i % (kDim / 8);
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (h < heads)
      v = *reinterpret_cast<const uint4*>(a.q + (int64_t(t) * heads + h) * kDim + u * 8);
    *reinterpret_cast<uint4*>(q_s + h * kRowStride + u * 8) = v;
  }
  if (tid < kMaxHeads) {
    const uint32_t w = tid < heads ? a.weights[int64_t(t) * heads + tid] : 0u;
    weights[tid] = w | (w << 16);
  }
  __syncthreads();

  WarpGroups g{&a, a.batch.slot[t], cta_first + warp, 0};
  g.count = g.first < cta_end ? (cta_end - g.first + kWarps - 1) / kWarps : 0;
  uint8_t* ring = smem + kQBytes + kWeightBytes + warp * kWarpBytes;
  auto* keys = reinterpret_cast<uint16_t*>(ring + kStages * kGroupBytes);
  uint16_t* terms = keys;
  uint16_t* scores = a.scores + int64_t(t) * a.score_stride;
  const auto rows = [&](int32_t i) { return i < g.count ? g.rows(i) : nullptr; };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) copy_group(rows(i), i, ring, lane);
  // Each group's block is looked up an iteration before its copies are issued (its table load
  // overlaps a group's work; measured no faster or slower than looking it up in place).
  const uint8_t* next = rows(kStages - 1);
  for (int32_t i = 0; i < g.count; ++i) {
    copy_group(next, i + kStages - 1, ring, lane);
    next = rows(i + kStages);
    cp_async_wait<kStages - 1>();
    __syncwarp();  // every lane's copies of group i
    decode_key(ring + (i % kStages) * kGroupBytes, keys, lane);
    __syncwarp();
    float acc[4][4][4];
    multiply_group(q_s, keys, lane, acc);
    __syncwarp();  // the keys read; the terms take their place
    store_terms(acc, weights, lane, terms);
    __syncwarp();
    const int32_t key = (g.first + i * kWarps) * kGroupKeys + lane;
    float score = 0.0f;
    // All 64 rows: past the token's heads the terms are +0 (zero weights), which leave the sum
    // as it is (it starts at +0, so it is never -0).
#pragma unroll
    for (int h = 0; h < kMaxHeads; ++h) {
      score = __fadd_rn(score, bf16_bits_to_float(terms[h * kTermStride + lane]));
    }
    if (key < visible) scores[key] = float_to_bf16_bits(score);
    __syncwarp();  // the terms read before the next group's keys overwrite them
  }
}

}  // namespace

void check_indexer_args(const IndexerArgs& a) {
  const auto key_bytes = int32_t(IndexKeyFormat{size_t(a.dim > 0 ? a.dim : 0)}.bytes());
  if (a.heads <= 0 || a.heads > kMaxHeads || a.dim <= 0 || a.dim % 32 != 0 || a.ratio <= 0 ||
      a.topk <= 0 || a.topk > kMaxIndexerTopk || a.max_visible < 0 || a.score_stride % 8 != 0 ||
      a.score_stride < a.max_visible || !a.q || !a.weights || !a.scores || !a.indices ||
      a.keys.row_bytes != key_bytes) {
    fail(
        "indexer: bad arguments (heads {} of at most {}, dim {}, ratio {}, topk {} of at most {}, "
        "max_visible {}, score_stride {}, key rows of {} bytes)",
        a.heads, kMaxHeads, a.dim, a.ratio, a.topk, kMaxIndexerTopk, a.max_visible, a.score_stride,
        a.keys.row_bytes);
  }
}

void indexer_scores(const IndexerArgs& a, cudaStream_t stream) {
  check_indexer_args(a);
  if (a.dim != kDim || a.keys.block_rows % kGroupKeys != 0) {
    fail(
        "indexer: the CUDA kernel takes index keys of {} dims (DeepSeek-V4's) in cache blocks of a "
        "multiple of {} rows; got {} dims, blocks of {} rows",
        kDim, kGroupKeys, a.dim, a.keys.block_rows);
  }
  if (a.batch.tokens <= 0 || a.max_visible == 0) return;
  static std::once_flag configured;
  std::call_once(configured, [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        indexer_scores_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(indexer_scores_kernel,
                                         cudaFuncAttributePreferredSharedMemoryCarveout,
                                         cudaSharedmemCarveoutMaxShared));
  });
  // About eight waves of CTAs over the batch, for an even last wave, but at least ~4 groups a
  // warp at the longest context, so that the rings fill.
  const int64_t max_groups = (a.max_visible + kGroupKeys - 1) / kGroupKeys;
  const int64_t slots = int64_t(kCtasPerSm) * current_device_traits().sm_count;
  const int64_t by_waves = (8 * slots + a.batch.tokens - 1) / a.batch.tokens;
  const int64_t by_depth = std::max<int64_t>(1, max_groups / (4 * kWarps));
  const auto ctas_per_token = unsigned(std::clamp<int64_t>(std::min(by_waves, by_depth), 1, 65535));
  launch_dependent(indexer_scores_kernel, dim3(unsigned(a.batch.tokens), ctas_per_token), kThreads,
                   size_t(kSharedBytes), stream, a);
}

}  // namespace dsv4::cuda
