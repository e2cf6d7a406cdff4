// Writing a step's KV rows (MODEL.md §2 attention step 2, §3): the bf16 row of each token
// (after kv_norm and RoPE) is stored in its exact form, KvRowFormat: nope dims as e4m3 with
// one ue8m0 scale per 64 values, rope dims bf16. Bit-identical to KvRowFormat::encode.
//
// Order within a step: write_kv_rows (chunk rows, and the ring for one-token decode chunks)
// -> sparse_attention (reads positions of the current chunk from the chunk rows, older ones
// from the ring) -> commit_window_rows (prefill chunks: the last `window` rows of each chunk
// into the ring, after attention so that no query loses a ring row it still needs).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/attention/kv_views.h"

namespace dsv4::cuda {

struct KvWriteArgs {
  TokenBatchView batch;
  const uint16_t* kv = nullptr;  // bf16 [tokens, head_dim]
  int32_t head_dim = 0;
  int32_t rope_dim = 0;
  uint8_t* chunk_rows = nullptr;  // [tokens, row_bytes] or null
  // When ring.pool is set: rows whose position is among the last `window` of their chunk also
  // go to ring row (slot, position % window). Safe before attention only for chunks of one
  // token (decode); longer chunks use commit_window_rows after attention.
  PagedRowsView ring;
  int32_t window = 0;
};

void write_kv_rows(const KvWriteArgs& args, cudaStream_t stream);

// Copies chunk_rows[t] to ring row (slot, position % window) for every token among the last
// `window` of its chunk.
void commit_window_rows(const TokenBatchView& batch, const uint8_t* chunk_rows,
                        const PagedRowsView& ring, int32_t window, cudaStream_t stream);

}  // namespace dsv4::cuda
