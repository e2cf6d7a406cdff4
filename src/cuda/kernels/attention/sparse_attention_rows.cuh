// The list of rows one query token attends to, laid out as DeepSeek's reference lays out its
// index list (the blocks of its online softmax depend on it), shared by the sparse attention
// kernels and the split combine: entry j < window is window position oldest + j (oldest =
// max(0, p - window + 1); masked where that passes p), from this step's chunk rows for positions
// of the current chunk and the ring for older ones; entry window + i is compressed entry i
// (CSA: the token's list, -1 = masked; HCA: entry i itself).
#pragma once

#include <cstdint>

#include "cuda/kernels/attention/sparse_attention.h"

namespace dsv4::cuda {

struct AttentionToken {
  int32_t t, slot, pos, chunk_first, chunk_pos0, n_window, n_rows, chunk_tokens;
};

__device__ __forceinline__ AttentionToken attention_token(const SparseAttentionArgs& a, int32_t t) {
  AttentionToken k;
  k.t = t;
  k.slot = a.batch.slot[t];
  k.pos = a.batch.position[t];
  k.chunk_first = a.batch.chunk_begin[t];
  k.chunk_pos0 = a.batch.position[k.chunk_first];
  k.chunk_tokens = a.batch.chunk_end[t] - k.chunk_first;
  k.n_window = min(a.window, k.pos + 1);
  int32_t n_compressed = 0;
  if (a.source == CompressedSource::kList) n_compressed = a.list_len;
  if (a.source == CompressedSource::kAll) n_compressed = (k.pos + 1) / a.ratio;
  k.n_rows = a.window + n_compressed;
  return k;
}

// Where entry j of the token's list lives (null: masked).
__device__ __forceinline__ const uint8_t* attention_row(const SparseAttentionArgs& a,
                                                        const AttentionToken& k, int32_t j,
                                                        int32_t row_bytes) {
  if (j < a.window) {
    if (j >= k.n_window) return nullptr;
    const int32_t p = k.pos - k.n_window + 1 + j;
    if (p >= k.chunk_pos0) {
      return a.chunk_rows + int64_t(k.chunk_first + (p - k.chunk_pos0)) * row_bytes;
    }
    return a.ring.row(k.slot, p % a.window);
  }
  if (j >= k.n_rows) return nullptr;
  int32_t e = j - a.window;
  if (a.source == CompressedSource::kList) e = a.list[int64_t(k.t) * a.list_stride + e];
  return e >= 0 ? a.entries.row(k.slot, e) : nullptr;
}

// The rows of the token's chunk's dense region (dense_rows_layout) that starts at row `base`:
// window position p (from p0 - window + 1, p0 the chunk's first position), then entry e.
__device__ __forceinline__ int64_t dense_window_row(int64_t base, const SparseAttentionArgs& a,
                                                    const AttentionToken& k, int32_t p) {
  return base + (p - (k.chunk_pos0 - a.window + 1));
}
__device__ __forceinline__ int64_t dense_entry_row(int64_t base, const SparseAttentionArgs& a,
                                                   const AttentionToken& k, int32_t e) {
  return base + (a.window + k.chunk_tokens - 1) + e;
}

// Entry j of the token's list in its chunk's dense region (-1: masked).
__device__ __forceinline__ int64_t dense_row_index(const SparseAttentionArgs& a,
                                                   const AttentionToken& k, int32_t j) {
  const int64_t base = a.dense.base[k.t];
  if (j < a.window) {
    if (j >= k.n_window) return -1;
    return dense_window_row(base, a, k, k.pos - k.n_window + 1 + j);
  }
  if (j >= k.n_rows) return -1;
  int32_t e = j - a.window;
  if (a.source == CompressedSource::kList) e = a.list[int64_t(k.t) * a.list_stride + e];
  return e >= 0 ? dense_entry_row(base, a, k, e) : -1;
}

}  // namespace dsv4::cuda
