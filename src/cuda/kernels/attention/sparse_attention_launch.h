// The sparse attention kernels behind sparse_attention() (sparse_attention.cu validates the
// arguments and picks one).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/attention/sparse_attention.h"

namespace dsv4::cuda {

// How the sm_90 kernel divides each token's 32-row tiles over CTAs.
struct AttentionSplit {
  int32_t splits = 1;
  int32_t tiles_per_split = 0;
};
// Workspace bytes of one launch of the sm_90 kernel.
size_t attention_split_workspace_bytes(int32_t tokens, int32_t heads, int32_t splits);

void launch_sparse_attention_sm90(const SparseAttentionArgs& args, const AttentionSplit& split,
                                  cudaStream_t stream);
void launch_sparse_attention_portable(const SparseAttentionArgs& args, int32_t row_bytes,
                                      cudaStream_t stream);

}  // namespace dsv4::cuda
