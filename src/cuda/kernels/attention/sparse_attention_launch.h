// The sparse attention kernels behind sparse_attention() (sparse_attention.cu validates the
// arguments, plans the sm_90 launch and picks a kernel).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/attention/sparse_attention.h"

namespace dsv4::cuda {

// How the sm_90 kernel divides a token's list: 64-row blocks (the online softmax's), up to
// blocks_per_split of them per CTA, `splits` CTAs per token (combined by a second launch).
struct AttentionPlan {
  int32_t splits = 1;
  int32_t blocks_per_split = 0;
};

// The sm_90 kernel's workspace with several splits, in floats: per (token, split, head) the
// running maximum (log2 domain), the row sum and the unnormalised output.
struct AttentionWorkspace {
  float* maxima;
  float* sums;
  float* outputs;  // [token][split][head][512]

  __host__ __device__ static size_t floats(int32_t tokens, int32_t heads, int32_t splits) {
    return splits > 1 ? size_t(tokens) * size_t(splits) * size_t(heads) * (2 + 512) : 0;
  }
  __host__ __device__ AttentionWorkspace(float* base, int32_t tokens, int32_t heads,
                                         int32_t splits) {
    const size_t rows = size_t(tokens) * size_t(splits) * size_t(heads);
    maxima = base;
    sums = maxima + rows;
    outputs = sums + rows;
  }
};

// The sm_90 kernel (and, with splits, the combine) over every token of args.batch
// (sparse_attention_sm90.cu); the portable kernel (sparse_attention_portable.cu).
void launch_sparse_attention_sm90(const SparseAttentionArgs& args, const AttentionPlan& plan,
                                  cudaStream_t stream);
// Merges the splits' partials in the workspace into args.out (both sm_90 kernels' second launch).
void launch_attention_split_combine(const SparseAttentionArgs& args, const AttentionPlan& plan,
                                    cudaStream_t stream);
// From dense rows (sparse_attention_sm90_dense.cu): the pass that fills them
// (sparse_attention_dense_rows.cu), then the kernel, one CTA per (token, 64 heads, split) (the
// plan's blocks_per_split even: the kernel takes blocks in pairs), then the combine.
void launch_dense_rows_pass(const SparseAttentionArgs& args, cudaStream_t stream);
void launch_sparse_attention_sm90_dense(const SparseAttentionArgs& args, const AttentionPlan& plan,
                                        cudaStream_t stream);
void launch_sparse_attention_portable(const SparseAttentionArgs& args, int32_t row_bytes,
                                      cudaStream_t stream);

}  // namespace dsv4::cuda
