// The sparse attention kernels behind sparse_attention() (sparse_attention.cu validates the
// arguments, plans the sm_90 launches and picks a kernel).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/attention/sparse_attention.h"

namespace dsv4::cuda {

// How the sm_90 kernels divide a batch: launches of at most tokens_per_launch tokens (as many
// as the workspace holds scores for), each token's 32-row tiles over `splits` CTAs.
struct AttentionPlan {
  int32_t tokens_per_launch = 0;
  int32_t splits = 1;
  int32_t tiles_per_split = 0;
  int32_t score_stride = 0;  // floats per (token, head) row of scores: max_rows in whole tiles
};

// The sm_90 kernels' workspace for one launch of `tokens` tokens, in floats: per (token, split,
// head) the maximum (log2 domain) and, with several splits, the row sum and the unnormalised
// output; then every (token, head)'s scaled scores, score_stride apart.
struct AttentionWorkspace {
  float* maxima;
  float* sums;
  float* outputs;  // [token][split][head][512]
  float* scores;   // [token][head][score_stride]

  __host__ __device__ static size_t floats(int32_t tokens, int32_t heads, int32_t splits,
                                           int32_t score_stride) {
    const size_t rows = size_t(tokens) * size_t(splits) * size_t(heads);
    return 2 * rows + (splits > 1 ? rows * 512 : 0) +
           size_t(tokens) * size_t(heads) * size_t(score_stride);
  }
  __host__ __device__ AttentionWorkspace(float* base, int32_t tokens, int32_t heads,
                                         int32_t splits) {
    const size_t rows = size_t(tokens) * size_t(splits) * size_t(heads);
    maxima = base;
    sums = maxima + rows;
    outputs = sums + rows;
    scores = outputs + (splits > 1 ? rows * 512 : 0);
  }
};

// One launch of the sm_90 kernels over tokens [first, first + count) of args.batch: the scores
// (sparse_attention_sm90_scores.cu), then the output and, with splits, the combine
// (sparse_attention_sm90_output.cu).
void launch_attention_scores_sm90(const SparseAttentionArgs& args, const AttentionPlan& plan,
                                  int32_t first, int32_t count, cudaStream_t stream);
void launch_sparse_attention_sm90(const SparseAttentionArgs& args, const AttentionPlan& plan,
                                  int32_t first, int32_t count, cudaStream_t stream);
void launch_sparse_attention_portable(const SparseAttentionArgs& args, int32_t row_bytes,
                                      cudaStream_t stream);

}  // namespace dsv4::cuda
