// The indexer top-k with a token's keys split into `ctas` chunks, one CTA each, in four launches
// (indexer_topk_common.cuh's steps, their state in args.topk_workspace): each CTA
// adds its chunk's high-byte histogram to the token's; then, the high bin known, its low-byte
// histogram; then, the threshold known, its counts of keys above and equal to it; then, from the
// counts of the chunks before it, it gathers its chunk's chosen keys into the token's candidates
// at the one-CTA gather's places, and the token's last CTA to finish sorts them and zeroes the
// token's histograms and count for the next call (no memset in the step). The same keys in the
// same order as the one-CTA kernel.
#include <algorithm>

#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/indexer/indexer_topk_common.cuh"
#include "cuda/kernels/indexer/indexer_topk_split.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

using namespace topk_steps;

constexpr int kThreads = 512;
constexpr int32_t kMinKeysPerCta = 2048;
// Below this many keys a token is done by one CTA (in the last launch): splitting it costs more
// than it saves.
constexpr int32_t kMinSplitKeys = 8192;

// Tokens a split step may have (and the most tokens of any GPU's plan: a quarter of its SMs).
constexpr int32_t kMaxSplitTokens = 64;

// The workspace: per token the high- and low-byte histograms and the count of CTAs done, at
// places that do not depend on the step's token count (zero between calls, whatever steps ran
// before: zeroed by the caller once, and again by each call's last CTA of a token); then this
// call's chunk counts (greater, equal) and the k candidates of each token, written before read.
struct SplitState {
  int* hist;         // [kMaxSplitTokens][2][256]
  int* done;         // [kMaxSplitTokens]
  int2* counts;      // [tokens][ctas]
  uint64_t* chosen;  // [tokens][topk]

  __host__ __device__ static size_t align(size_t bytes) { return (bytes + 255) / 256 * 256; }
  __host__ __device__ static size_t state_bytes() {
    return sizeof(int) * size_t(kMaxSplitTokens) * (2 * 256 + 1);
  }
  __host__ __device__ static size_t bytes(int32_t tokens, int32_t ctas, int32_t topk) {
    return align(state_bytes()) + align(sizeof(int2) * size_t(tokens) * size_t(ctas)) +
           sizeof(uint64_t) * size_t(tokens) * size_t(topk);
  }
  __host__ __device__ SplitState(void* base, int32_t tokens, int32_t ctas) {
    auto* p = static_cast<uint8_t*>(base);
    hist = reinterpret_cast<int*>(p);
    done = hist + size_t(kMaxSplitTokens) * 2 * 256;
    p += align(state_bytes());
    counts = reinterpret_cast<int2*>(p);
    p += align(sizeof(int2) * size_t(tokens) * size_t(ctas));
    chosen = reinterpret_cast<uint64_t*>(p);
  }
};

// The token's keys and this CTA's chunk of them (a multiple of kPerThread long; may be empty).
struct Chunk {
  int32_t t, visible, begin, end;
  const uint16_t* scores;
  bool split;  // the token's keys are split; else CTA 0 of the last launch does them all
};
__device__ __forceinline__ Chunk chunk_of(const IndexerArgs& a) {
  Chunk c;
  c.t = int32_t(blockIdx.x);
  c.visible = min((a.batch.position[c.t] + 1) / a.ratio, a.max_visible);
  const int32_t ctas = int32_t(gridDim.y);
  const int32_t per = ((c.visible + ctas - 1) / ctas + kPerThread - 1) / kPerThread * kPerThread;
  c.begin = min(int32_t(blockIdx.y) * per, c.visible);
  c.end = min(c.begin + per, c.visible);
  c.scores = a.scores + int64_t(c.t) * a.score_stride;
  c.split = c.visible > max(a.topk, kMinSplitKeys);
  return c;
}

// The token's histogram `which` (0 high, 1 low) from the workspace into shared memory.
__device__ __forceinline__ void load_histogram(const SplitState& s, int32_t t, int which, int* hist,
                                               int tid) {
  for (int i = tid; i < 256; i += kThreads)
    hist[i] = __ldcg(s.hist + (size_t(t) * 2 + which) * 256 + i);
}

// Adds the chunk's keys with bin_of != -1 to the token's histogram `which`.
template <class BinOf>
__device__ __forceinline__ void add_histogram(const SplitState& s, const Chunk& c, int which,
                                              int* hist, BinOf bin_of, int tid) {
  for (int i = tid; i < 256; i += kThreads) hist[i] = 0;
  __syncthreads();
  histogram_range<kThreads>(c.scores, c.begin, c.end, hist, bin_of, tid);
  __syncthreads();
  int* total = s.hist + (size_t(c.t) * 2 + which) * 256;
  for (int i = tid; i < 256; i += kThreads) {
    if (hist[i] != 0) atomicAdd(total + i, hist[i]);
  }
}

__global__ void __launch_bounds__(kThreads) split_high_histogram(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int hist[256];
  const Chunk c = chunk_of(a);
  if (!c.split || c.begin >= c.end) return;
  const SplitState s(a.topk_workspace, a.batch.tokens, int32_t(gridDim.y));
  add_histogram(
      s, c, 0, hist, [](uint32_t key) { return int(key >> 8); }, int(threadIdx.x));
}

__global__ void __launch_bounds__(kThreads) split_low_histogram(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int high_hist[256], hist[256];
  const Chunk c = chunk_of(a);
  if (!c.split || c.begin >= c.end) return;
  const int tid = int(threadIdx.x);
  const SplitState s(a.topk_workspace, a.batch.tokens, int32_t(gridDim.y));
  load_histogram(s, c.t, 0, high_hist, tid);
  __syncthreads();
  const HighBin high = select_high_bin(high_hist, a.topk, tid / 32, tid % 32);
  add_histogram(
      s, c, 1, hist,
      [high](uint32_t key) { return (key >> 8) == high.bin ? int(key & 0xffu) : -1; }, tid);
}

// The threshold from the token's two histograms, every thread's copy.
__device__ __forceinline__ Threshold token_threshold(const SplitState& s, const IndexerArgs& a,
                                                     int32_t t, int tid) {
  __shared__ int high_hist[256], low_hist[256];
  load_histogram(s, t, 0, high_hist, tid);
  load_histogram(s, t, 1, low_hist, tid);
  __syncthreads();
  return select_threshold(high_hist, low_hist, a.topk, tid / 32, tid % 32);
}

__global__ void __launch_bounds__(kThreads) split_count(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int warp_sums[kThreads / 32];
  const Chunk c = chunk_of(a);
  if (!c.split) return;
  const int tid = int(threadIdx.x);
  const SplitState s(a.topk_workspace, a.batch.tokens, int32_t(gridDim.y));
  const Threshold threshold = token_threshold(s, a, c.t, tid);
  const int2 counts =
      count_range<kThreads>(c.scores, c.begin, c.end, threshold.key, warp_sums, tid);
  if (tid == 0) s.counts[size_t(c.t) * gridDim.y + blockIdx.y] = counts;
}

__global__ void __launch_bounds__(kThreads) split_gather(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int warp_sums[kThreads / 32];
  __shared__ int before[2];
  __shared__ bool last;
  __shared__ uint64_t entries[kMaxIndexerTopk];
  const Chunk c = chunk_of(a);
  const int tid = int(threadIdx.x), lane = tid % 32;
  int32_t* out = a.indices + int64_t(c.t) * a.topk;
  if (!c.split) {
    if (blockIdx.y != 0) return;
    if (c.visible <= a.topk) {
      sort_all<kThreads>(c.scores, c.visible, a.topk, entries, out, tid);
    } else {
      __shared__ int hist[512];
      select_in_one_cta<kThreads>(c.scores, c.visible, a.topk, hist, warp_sums, entries, out, tid);
    }
    return;
  }
  const SplitState s(a.topk_workspace, a.batch.tokens, int32_t(gridDim.y));
  const Threshold threshold = token_threshold(s, a, c.t, tid);
  if (tid < 32) {
    int greater = 0, equal = 0;
    for (int i = lane; i < int(blockIdx.y); i += 32) {
      const int2 v = __ldcg(s.counts + size_t(c.t) * gridDim.y + i);
      greater += v.x;
      equal += v.y;
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      greater += __shfl_xor_sync(0xffffffffu, greater, offset);
      equal += __shfl_xor_sync(0xffffffffu, equal, offset);
    }
    if (lane == 0) {
      before[0] = greater;
      before[1] = equal;
    }
  }
  __syncthreads();
  uint64_t* chosen = s.chosen + size_t(c.t) * a.topk;
  gather_range<kThreads>(c.scores, c.begin, c.end, threshold.key, threshold.need_equal, before[0],
                         before[1], chosen, warp_sums, tid);
  // The last CTA of the token to finish sorts the candidates (the others' writes made visible
  // before their arrival is counted).
  __threadfence();
  __syncthreads();
  if (tid == 0) last = atomicAdd(s.done + c.t, 1) == int(gridDim.y) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int i = tid; i < a.topk; i += kThreads) entries[i] = __ldcg(chosen + i);
  // Every other CTA of the token has read the histograms (before it arrived): zero them.
  for (int i = tid; i < 2 * 256; i += kThreads) s.hist[size_t(c.t) * 2 * 256 + i] = 0;
  if (tid == 0) s.done[c.t] = 0;
  sort_and_emit<kThreads>(entries, a.topk, out, tid);
}

// Beyond a quarter of the SMs' count of tokens the one-CTA kernel fills the GPU well enough that
// the split's extra launches do not pay (measured at batch 64 and 256, bench/RESULTS.md).
int32_t most_split_tokens() {
  return std::min(current_device_traits().sm_count / 4, kMaxSplitTokens);
}

int32_t plan_ctas(const IndexerArgs& a) {
  const int64_t sms = current_device_traits().sm_count;
  const int64_t by_sms = (2 * sms + a.batch.tokens - 1) / a.batch.tokens;
  const int64_t by_keys = (int64_t(a.max_visible) + kMinKeysPerCta - 1) / kMinKeysPerCta;
  return int32_t(std::clamp<int64_t>(std::min(by_sms, by_keys), 1, 65535));
}

}  // namespace

size_t indexer_topk_workspace_bytes(int32_t max_tokens, int32_t max_visible, int32_t topk) {
  if (max_tokens <= 0 || max_visible <= std::max(topk, kMinSplitKeys) || topk <= 0) return 0;
  IndexerArgs a;
  a.max_visible = max_visible;
  size_t most = 0;
  for (int32_t tokens = 1; tokens <= std::min(max_tokens, most_split_tokens()); ++tokens) {
    a.batch.tokens = tokens;
    const int32_t ctas = plan_ctas(a);
    if (ctas > 1) most = std::max(most, SplitState::bytes(tokens, ctas, topk));
  }
  return most;
}

int32_t indexer_topk_split_ctas(const IndexerArgs& a) {
  if (!a.topk_workspace || a.max_visible <= std::max(a.topk, kMinSplitKeys) ||
      a.batch.tokens > most_split_tokens()) {
    return 1;
  }
  const int32_t ctas = plan_ctas(a);
  if (ctas <= 1 || SplitState::bytes(a.batch.tokens, ctas, a.topk) > a.topk_workspace_bytes) {
    return 1;
  }
  return ctas;
}

void launch_indexer_topk_split(const IndexerArgs& a, int32_t ctas, cudaStream_t stream) {
  const dim3 grid(unsigned(a.batch.tokens), unsigned(ctas));
  launch_dependent(split_high_histogram, grid, kThreads, 0, stream, a);
  launch_dependent(split_low_histogram, grid, kThreads, 0, stream, a);
  launch_dependent(split_count, grid, kThreads, 0, stream, a);
  launch_dependent(split_gather, grid, kThreads, 0, stream, a);
}

}  // namespace dsv4::cuda
