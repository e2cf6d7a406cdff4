// Lightning Indexer scoring and top-k selection (MODEL.md §2 step 6), the twin of
// cpu::indexer_select in official numerics: for query token t at position p the visible keys
// are s < (p + 1) / ratio, and
//   score[t, s] = bf16(Σ_h bf16(relu(bf16(q_h · k_s)) · w_h))   (sum over h in order, fp32)
// then the indices of the top min(topk, visible) scores by descending score, ties to the lower
// index (cpu::indexer_select's order), padded with -1 to topk. Keys are IndexKeyFormat rows (packed
// e2m1 + ue8m0 per 32) in the paged cache (see cuda/kernels/attention/kv_views.h).
//
// q · k is exact in fp32 for the model's inputs (q and k are both FP4 values times powers of
// two), so scores, and therefore the chosen index sets, are bit-identical to the CPU's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/attention/kv_views.h"

namespace dsv4::cuda {

constexpr int32_t kMaxIndexerTopk = 2048;  // the most entries indexer_topk orders

struct IndexerArgs {
  TokenBatchView batch;               // slot and position used
  const uint16_t* q = nullptr;        // bf16 [tokens, heads, dim]: rotated, Hadamard, FP4 values
  const uint16_t* weights = nullptr;  // bf16 [tokens, heads], already scaled
  PagedRowsView keys;                 // index key w at row w; blocks of a multiple of 32 rows
  int32_t heads = 0;                  // at most 64
  int32_t dim = 0;                    // 128 (DeepSeek-V4's; the scoring kernel's only size)
  int32_t ratio = 0;
  int32_t topk = 0;
  // Upper bound of (p + 1) / ratio over the batch (sizes the grid, e.g. from the cache's
  // max_length); keys beyond it are not scored.
  int32_t max_visible = 0;
  uint16_t* scores = nullptr;  // scratch bf16 [tokens, score_stride]
  int64_t score_stride = 0;    // >= max_visible, multiple of 8
  int32_t* indices = nullptr;  // [tokens, topk]
  // Optional: indexer_topk_workspace_bytes() for the step's sizes lets the top-k split a token's
  // keys over several CTAs when a step has few tokens (one CTA a token otherwise). Zeroed by the
  // caller before its first use; every call leaves it ready for the next.
  void* topk_workspace = nullptr;
  size_t topk_workspace_bytes = 0;
};

// The top-k workspace for any step of up to max_tokens tokens (0 when none would split).
size_t indexer_topk_workspace_bytes(int32_t max_tokens, int32_t max_visible, int32_t topk);

// Throws dsv4::Error when the shapes or pointers are unusable.
void check_indexer_args(const IndexerArgs& args);
// Scores of every visible key into args.scores.
void indexer_scores(const IndexerArgs& args, cudaStream_t stream);
// Top-k of args.scores into args.indices.
void indexer_topk(const IndexerArgs& args, cudaStream_t stream);
// Both.
void indexer_select(const IndexerArgs& args, cudaStream_t stream);

}  // namespace dsv4::cuda
