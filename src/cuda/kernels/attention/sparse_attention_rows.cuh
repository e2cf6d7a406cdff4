// The rows one query token attends to, shared by the sparse attention kernels and the split
// combine: row j < n_window is the window position p - n_window + 1 + j (this step's chunk
// rows for positions of the current chunk, the ring for older ones); row n_window + i is
// compressed entry i (CSA: the token's list, -1 = masked; HCA: entry i itself).
#pragma once

#include <cstdint>

#include "cuda/kernels/attention/sparse_attention.h"

namespace dsv4::cuda {

struct AttentionToken {
  int32_t t, slot, pos, chunk_first, chunk_pos0, n_window, n_rows;
};

__device__ __forceinline__ AttentionToken attention_token(const SparseAttentionArgs& a, int32_t t) {
  AttentionToken k;
  k.t = t;
  k.slot = a.batch.slot[t];
  k.pos = a.batch.position[t];
  k.chunk_first = a.batch.chunk_begin[t];
  k.chunk_pos0 = a.batch.position[k.chunk_first];
  k.n_window = min(a.window, k.pos + 1);
  int32_t n_compressed = 0;
  if (a.source == CompressedSource::kList) n_compressed = a.list_len;
  if (a.source == CompressedSource::kAll) n_compressed = (k.pos + 1) / a.ratio;
  k.n_rows = k.n_window + n_compressed;
  return k;
}

// Where row j of the token's rows lives (null: masked).
__device__ __forceinline__ const uint8_t* attention_row(const SparseAttentionArgs& a,
                                                        const AttentionToken& k, int32_t j,
                                                        int32_t row_bytes) {
  if (j < k.n_window) {
    const int32_t p = k.pos - k.n_window + 1 + j;
    if (p >= k.chunk_pos0) {
      return a.chunk_rows + int64_t(k.chunk_first + (p - k.chunk_pos0)) * row_bytes;
    }
    return a.ring.row(k.slot, p % a.window);
  }
  if (j >= k.n_rows) return nullptr;
  int32_t e = j - k.n_window;
  if (a.source == CompressedSource::kList) e = a.list[int64_t(k.t) * a.list_stride + e];
  return e >= 0 ? a.entries.row(k.slot, e) : nullptr;
}

}  // namespace dsv4::cuda
