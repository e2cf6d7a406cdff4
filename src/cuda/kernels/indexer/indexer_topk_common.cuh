// The indexer top-k's building blocks, shared by the one-CTA kernel (indexer_topk.cu) and the
// kernels that split a token's keys over several CTAs (indexer_topk_split.cu). The bf16 scores
// map to order-preserving 16-bit keys; two 8-bit radix histograms give the threshold key T (the
// k-th largest) and how many keys lie above it; a gather in index order takes every key > T and
// the lowest-indexed keys == T (the CPU's partial_sort set, ties to the lower index); a bitonic
// sort puts them in the CPU's order (descending key, ties by ascending index).
#pragma once

#include <cstdint>

#include "cuda/kernels/indexer/indexer.h"

namespace dsv4::cuda::topk_steps {

constexpr int kPerThread = 8;  // keys a thread takes at a time: one 16-byte load of bf16 scores

// (key, index) as one integer that sorts descending by key, then ascending by index.
__device__ __forceinline__ uint64_t sort_entry(uint32_t key, int32_t index) {
  return (uint64_t(key) << 32) | uint64_t(0xffffffffu - uint32_t(index));
}
__device__ __forceinline__ int32_t entry_index(uint64_t entry) {
  return int32_t(0xffffffffu - uint32_t(entry));
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

// Sorts entries[0, n) descending (n <= kMaxIndexerTopk), the rest of the power-of-two span padded
// with zeros (below every entry), and writes their indices to out[0, n). Every thread takes part.
template <int kThreads>
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

// Every visible key (visible <= topk) in order into out, -1 past them: their entries sorted in
// `entries` (shared, kMaxIndexerTopk).
template <int kThreads>
__device__ void sort_all(const uint16_t* scores, int32_t visible, int32_t topk, uint64_t* entries,
                         int32_t* out, int tid) {
  for (int32_t i = visible + tid; i < topk; i += kThreads) out[i] = -1;
  for (int32_t i = tid; i < visible; i += kThreads)
    entries[i] = sort_entry(score_key(scores[i]), i);
  sort_and_emit<kThreads>(entries, visible, out, tid);
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

// Adds to hist (shared, 256 bins) the keys of [begin, end) whose bin_of is not -1 (begin a
// multiple of kPerThread).
template <int kThreads, class BinOf>
__device__ __forceinline__ void histogram_range(const uint16_t* scores, int32_t begin, int32_t end,
                                                int* hist, BinOf bin_of, int tid) {
  for (int32_t base = begin + tid * kPerThread; base < end; base += kThreads * kPerThread) {
    uint32_t keys[8];
    load_keys(scores, base, keys);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int bin = base + j < end ? bin_of(keys[j]) : -1;
      if (bin >= 0) atomicAdd(&hist[bin], 1);
    }
  }
}

// The high byte of the threshold key (the bin of the high-byte histogram, shared, where the k-th
// largest key lies) and how many keys lie in the bins above, every thread's copy.
struct HighBin {
  uint32_t bin;
  int above;
};
__device__ __forceinline__ HighBin select_high_bin(const int* high_hist, int k, int warp,
                                                   int lane) {
  __shared__ int bin, above;
  if (warp == 0) select_bin(high_hist, k, lane, &bin, &above);
  __syncthreads();
  const HighBin found{uint32_t(bin), above};
  __syncthreads();  // read before a later call writes them
  return found;
}

// The threshold key and how many keys equal to it to take, from both histograms (shared).
struct Threshold {
  uint32_t key;
  int need_equal;
};
__device__ __forceinline__ Threshold select_threshold(const int* high_hist, const int* low_hist,
                                                      int k, int warp, int lane) {
  const HighBin high = select_high_bin(high_hist, k, warp, lane);
  const HighBin low = select_high_bin(low_hist, k - high.above, warp, lane);
  return {(high.bin << 8) | low.bin, k - (high.above + low.above)};
}

// Adds to greater / equal how many of the first n (of 8) keys lie above / at the threshold.
__device__ __forceinline__ void count_against(const uint32_t (&keys)[8], int32_t n,
                                              uint32_t threshold, int& greater, int& equal) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (j < n) {
      greater += keys[j] > threshold;
      equal += keys[j] == threshold;
    }
  }
}

// How many keys of [begin, end) lie above the threshold and how many equal it, block-wide: every
// thread gets the totals. warp_sums is shared scratch of kThreads / 32 ints.
template <int kThreads>
__device__ __forceinline__ int2 count_range(const uint16_t* scores, int32_t begin, int32_t end,
                                            uint32_t threshold, int* warp_sums, int tid) {
  int greater = 0, equal = 0;
  for (int32_t base = begin + tid * kPerThread; base < end; base += kThreads * kPerThread) {
    uint32_t keys[8];
    load_keys(scores, base, keys);
    count_against(keys, end - base, threshold, greater, equal);
  }
  const int lane = tid % 32, warp = tid / 32;
  for (int offset = 16; offset > 0; offset >>= 1) {
    greater += __shfl_xor_sync(0xffffffffu, greater, offset);
    equal += __shfl_xor_sync(0xffffffffu, equal, offset);
  }
  if (lane == 0) warp_sums[warp] = greater;
  __syncthreads();
  int total_greater = 0;
  for (int w = 0; w < kThreads / 32; ++w) total_greater += warp_sums[w];
  __syncthreads();
  if (lane == 0) warp_sums[warp] = equal;
  __syncthreads();
  int total_equal = 0;
  for (int w = 0; w < kThreads / 32; ++w) total_equal += warp_sums[w];
  __syncthreads();
  return make_int2(total_greater, total_equal);
}

// In index order over [begin, end): every key > threshold and, of the keys == threshold, those
// whose rank among all equal keys (equal_before of them precede begin) is below need_equal, each
// at chosen[greater_before + its rank among the chosen]: the one-CTA gather with its counts so
// far given. warp_sums is shared scratch of kThreads / 32 ints.
template <int kThreads>
__device__ __forceinline__ void gather_range(const uint16_t* scores, int32_t begin, int32_t end,
                                             uint32_t threshold, int need_equal, int greater_before,
                                             int equal_before, uint64_t* chosen, int* warp_sums,
                                             int tid) {
  constexpr int kWarps = kThreads / 32, kChunk = kThreads * kPerThread;
  const int lane = tid % 32, warp = tid / 32;
  for (int32_t chunk = begin; chunk < end; chunk += kChunk) {
    const int32_t base = chunk + tid * kPerThread;
    uint32_t keys[8];
    int greater = 0, equal = 0;
    if (base < end) {
      load_keys(scores, base, keys);
      count_against(keys, end - base, threshold, greater, equal);
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
      int v = lane < kWarps ? warp_sums[lane] : 0;
#pragma unroll
      for (int offset = 1; offset < 32; offset <<= 1) {
        const int other = __shfl_up_sync(0xffffffffu, v, offset);
        if (lane >= offset) v += other;
      }
      if (lane < kWarps) warp_sums[lane] = v;
    }
    __syncthreads();
    const int exclusive = (warp > 0 ? warp_sums[warp - 1] : 0) + inclusive - packed;
    const int total = warp_sums[kWarps - 1];
    int g = greater_before + (exclusive >> 16), e = equal_before + (exclusive & 0xffff);
    if (base < end) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (base + j >= end) break;
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
}

// The whole top-k of one token by one CTA (visible > k): both histograms over every key, the
// threshold, the gather into `chosen` (shared, kMaxIndexerTopk), the sort into out. hist is
// shared scratch of 512 ints, warp_sums of kThreads / 32.
template <int kThreads>
__device__ __forceinline__ void select_in_one_cta(const uint16_t* scores, int32_t visible, int k,
                                                  int* hist, int* warp_sums, uint64_t* chosen,
                                                  int32_t* out, int tid) {
  const int lane = tid % 32, warp = tid / 32;
  int* high_hist = hist;
  int* low_hist = hist + 256;
  for (int i = tid; i < 512; i += kThreads) hist[i] = 0;
  __syncthreads();
  histogram_range<kThreads>(
      scores, 0, visible, high_hist, [](uint32_t key) { return int(key >> 8); }, tid);
  __syncthreads();
  const HighBin high = select_high_bin(high_hist, k, warp, lane);
  histogram_range<kThreads>(
      scores, 0, visible, low_hist,
      [high](uint32_t key) { return (key >> 8) == high.bin ? int(key & 0xffu) : -1; }, tid);
  __syncthreads();
  const Threshold threshold = select_threshold(high_hist, low_hist, k, warp, lane);
  gather_range<kThreads>(scores, 0, visible, threshold.key, threshold.need_equal, 0, 0, chosen,
                         warp_sums, tid);
  sort_and_emit<kThreads>(chosen, k, out, tid);
}

}  // namespace dsv4::cuda::topk_steps
