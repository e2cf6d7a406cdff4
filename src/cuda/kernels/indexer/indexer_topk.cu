// Indexer top-k (indexer_topk_common.cuh's steps): one CTA of 1024 threads per token, or, for a
// few tokens with many keys and a workspace, several CTAs a token (indexer_topk_split.cu), the
// same choice either way.
// Measured (H200, 250K keys, one token, one CTA): ~120-150 us, about a cycle a key a pass on its
// one SM. Neither per-lane histogram columns (no two lanes of a warp on one counter) nor loading
// four chunks ahead made it faster (bench/RESULTS.md, nineteenth session): the passes' own work on
// one SM bounds it, hence the split.
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/kernels/indexer/indexer_topk_common.cuh"
#include "cuda/kernels/indexer/indexer_topk_split.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

using namespace topk_steps;

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads) indexer_topk_kernel(const IndexerArgs a) {
  wait_for_previous_kernel();
  __shared__ int hist[512];
  __shared__ int warp_sums[kThreads / 32];
  __shared__ uint64_t chosen[kMaxIndexerTopk];
  const int32_t t = int32_t(blockIdx.x);
  const int tid = int(threadIdx.x);
  const int32_t visible = min((a.batch.position[t] + 1) / a.ratio, a.max_visible);
  int32_t* out = a.indices + int64_t(t) * a.topk;
  const uint16_t* scores = a.scores + int64_t(t) * a.score_stride;
  if (visible <= a.topk) {
    sort_all<kThreads>(scores, visible, a.topk, chosen, out, tid);
  } else {
    select_in_one_cta<kThreads>(scores, visible, a.topk, hist, warp_sums, chosen, out, tid);
  }
}

}  // namespace

void indexer_topk(const IndexerArgs& a, cudaStream_t stream) {
  check_indexer_args(a);
  if (a.batch.tokens <= 0) return;
  const int32_t ctas = indexer_topk_split_ctas(a);
  if (ctas > 1) {
    launch_indexer_topk_split(a, ctas, stream);
    return;
  }
  launch_dependent(indexer_topk_kernel, unsigned(a.batch.tokens), kThreads, 0, stream, a);
}

void indexer_select(const IndexerArgs& a, cudaStream_t stream) {
  indexer_scores(a, stream);
  indexer_topk(a, stream);
}

}  // namespace dsv4::cuda
