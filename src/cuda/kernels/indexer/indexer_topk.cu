// Indexer top-k: one CTA of 1024 threads per token. The bf16 scores map to order-preserving
// 16-bit keys; two 8-bit radix-histogram passes find the threshold key T (the k-th largest)
// and how many keys lie above it; a pass in index order (block-wide prefix sums of the
// per-thread counts) gathers every key > T and the lowest-indexed keys == T, which is exactly
// the CPU's partial_sort set with ties to the lower index; a bitonic sort in shared memory puts
// them in the CPU's order (descending key, ties by ascending index).
// Measured (H200, 250K keys, one token): ~120-130 us, one SM busy, about a cycle a key a pass.
// Neither per-lane histogram columns (no two lanes of a warp on one counter) nor loading four
// chunks ahead made it faster (bench/RESULTS.md, nineteenth session): the passes' own work on
// one SM bounds it. Next: split long rows over several CTAs per token (per-CTA histograms merged in
// global memory, per-chunk counts for the ordered gather).
#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kPerThread = 8;  // one 16-byte load of bf16 scores
constexpr int kChunk = kThreads * kPerThread;
constexpr int kMaxTopk = kMaxIndexerTopk;  // what the sort holds: two entries a thread

// (key, index) as one integer that sorts descending by key, then ascending by index.
__device__ __forceinline__ uint64_t sort_entry(uint32_t key, int32_t index) {
  return (uint64_t(key) << 32) | uint64_t(0xffffffffu - uint32_t(index));
}
__device__ __forceinline__ int32_t entry_index(uint64_t entry) {
  return int32_t(0xffffffffu - uint32_t(entry));
}

// Sorts entries[0, n) descending (n <= kMaxTopk), the rest of the power-of-two span padded with
// zeros (below every entry), and writes their indices to out[0, n). Every thread takes part.
__device__ void sort_and_emit(uint64_t* entries, int n, int32_t* out, int tid) {
  int span = 1;
  while (span < n) span <<= 1;
  for (int i = n + tid; i < span; i += kThreads) entries[i] = 0;
  __syncthreads();
  for (int size = 2; size <= span; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      for (int i = tid; i < span; i += kThreads) {
        const int j = i ^ stride;
        if (j > i) {
          const uint64_t x = entries[i], y = entries[j];
          // Descending runs where bit `size` of i is clear, so the last merge is descending.
          if (((i & size) == 0) == (x < y)) {
            entries[i] = y;
            entries[j] = x;
          }
        }
      }
      __syncthreads();
    }
  }
  for (int i = tid; i < n; i += kThreads) out[i] = entry_index(entries[i]);
}

// Larger scores give larger keys; -0 counts as +0 (they compare equal on the CPU).
__device__ __forceinline__ uint32_t score_key(uint32_t bits) {
  bits &= 0xffffu;
  if (bits == 0x8000u) bits = 0u;
  return (bits & 0x8000u) ? (~bits & 0xffffu) : (bits | 0x8000u);
}

__device__ __forceinline__ void load_keys(const uint16_t* scores, int32_t base, uint32_t (&k)[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(scores + base);
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 8; ++j) k[j] = score_key(words[j / 2] >> (16 * (j % 2)));
}

// Warp 0: the bin (scanning from 255 down) where the running count reaches `need`, and the
// count of the bins above it.
__device__ __forceinline__ void select_bin(const int* hist, int need, int lane, int* bin,
                                           int* above) {
  int c[8], local = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    c[j] = hist[255 - 8 * lane - j];
    local += c[j];
  }
  int inclusive = local;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const int other = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  const int exclusive = inclusive - local;
  if (exclusive < need && need <= inclusive) {
    int running = exclusive;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (running + c[j] >= need) {
        *bin = 255 - 8 * lane - j;
        *above = running;
        break;
      }
      running += c[j];
    }
  }
}

__global__ void __launch_bounds__(kThreads) indexer_topk_kernel(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int hist[256];
  __shared__ int warp_sums[kWarps];
  __shared__ int found_bin, found_above;
  __shared__ uint64_t chosen[kMaxTopk];

  const int32_t t = int32_t(blockIdx.x);
  const int tid = int(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int32_t visible = min((a.batch.position[t] + 1) / a.ratio, a.max_visible);
  int32_t* out = a.indices + int64_t(t) * a.topk;
  const uint16_t* scores = a.scores + int64_t(t) * a.score_stride;
  const auto key_of = [&](int32_t s) { return score_key(scores[s]); };
  if (visible <= a.topk) {
    for (int32_t i = visible + tid; i < a.topk; i += kThreads) out[i] = -1;
    for (int32_t i = tid; i < visible; i += kThreads) chosen[i] = sort_entry(key_of(i), i);
    sort_and_emit(chosen, visible, out, tid);
    return;
  }
  const int k = a.topk;

  // Pass 1: histogram of the high bytes.
  for (int i = tid; i < 256; i += kThreads) hist[i] = 0;
  __syncthreads();
  for (int32_t base = tid * kPerThread; base < visible; base += kChunk) {
    uint32_t keys[8];
    load_keys(scores, base, keys);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (base + j < visible) atomicAdd(&hist[keys[j] >> 8], 1);
    }
  }
  __syncthreads();
  if (warp == 0) select_bin(hist, k, lane, &found_bin, &found_above);
  __syncthreads();
  const uint32_t high = uint32_t(found_bin);
  const int above_high = found_above;
  __syncthreads();

  // Pass 2: histogram of the low bytes within the high byte's bin.
  for (int i = tid; i < 256; i += kThreads) hist[i] = 0;
  __syncthreads();
  for (int32_t base = tid * kPerThread; base < visible; base += kChunk) {
    uint32_t keys[8];
    load_keys(scores, base, keys);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (base + j < visible && (keys[j] >> 8) == high) atomicAdd(&hist[keys[j] & 0xffu], 1);
    }
  }
  __syncthreads();
  if (warp == 0) select_bin(hist, k - above_high, lane, &found_bin, &found_above);
  __syncthreads();
  const uint32_t threshold = (high << 8) | uint32_t(found_bin);
  const int need_equal = k - (above_high + found_above);

  // Pass 3: in index order, every key > threshold and the first need_equal keys == threshold.
  int greater_before = 0, equal_before = 0;
  for (int32_t chunk = 0; chunk < visible; chunk += kChunk) {
    const int32_t base = chunk + tid * kPerThread;
    uint32_t keys[8];
    int greater = 0, equal = 0;
    if (base < visible) {
      load_keys(scores, base, keys);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (base + j < visible) {
          greater += keys[j] > threshold;
          equal += keys[j] == threshold;
        }
      }
    }
    const int packed = (greater << 16) | equal;  // both at most kChunk < 2^16
    int inclusive = packed;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int other = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += other;
    }
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
      int v = warp_sums[lane];
#pragma unroll
      for (int offset = 1; offset < 32; offset <<= 1) {
        const int other = __shfl_up_sync(0xffffffffu, v, offset);
        if (lane >= offset) v += other;
      }
      warp_sums[lane] = v;
    }
    __syncthreads();
    const int exclusive = (warp > 0 ? warp_sums[warp - 1] : 0) + inclusive - packed;
    const int total = warp_sums[kWarps - 1];
    int g = greater_before + (exclusive >> 16), e = equal_before + (exclusive & 0xffff);
    if (base < visible) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (base + j >= visible) break;
        if (keys[j] > threshold) {
          chosen[g + min(e, need_equal)] = sort_entry(keys[j], base + j);
          ++g;
        } else if (keys[j] == threshold) {
          if (e < need_equal) chosen[g + e] = sort_entry(keys[j], base + j);
          ++e;
        }
      }
    }
    greater_before += total >> 16;
    equal_before += total & 0xffff;
    __syncthreads();
  }
  sort_and_emit(chosen, k, out, tid);
}

}  // namespace

void indexer_topk(const IndexerArgs& a, cudaStream_t stream) {
  check_indexer_args(a);
  if (a.batch.tokens <= 0) return;
  launch_dependent(indexer_topk_kernel, unsigned(a.batch.tokens), kThreads, 0, stream, a);
}

void indexer_select(const IndexerArgs& a, cudaStream_t stream) {
  indexer_scores(a, stream);
  indexer_topk(a, stream);
}

}  // namespace dsv4::cuda
