// The KV compressor step (MODEL.md §2 step 5), the twin of cpu::compressor_push followed by
// cpu::finish_compressed_entry and the row store: for every token of the batch, its fp32
// projections (kv, gate) join the partial window of its sequence; a token that completes
// window w = position / ratio pools entry w with a per-channel softmax over the window's gate
// logits (+ position bias) — overlapping compressors (CSA) pool the previous window's tokens
// on channels [0, dim) and the current window's on [dim, 2·dim) — then
//   main:    RMSNorm -> RoPE at position ratio·w -> KvRowFormat row (FP8 nope, bf16 rope)
//   indexer: RMSNorm -> RoPE -> Hadamard (dim^-0.5) -> bf16 -> IndexKeyFormat key (FP4),
// written to row w of the sequence's paged entries (and a main entry's bf16 copy, if asked). Tokens
// of one chunk are handled together (rows of the chunk are read from the inputs, older ones from
// the state), so chunks of any length at any position work; the state is updated after pooling.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/attention/kv_views.h"

namespace dsv4::cuda {

enum class CompressedKind { kMainKv, kIndexKey };

struct CompressorArgs {
  TokenBatchView batch;
  const float* kv = nullptr;             // [tokens, width] fp32, width = overlap ? 2·dim : dim
  const float* gate = nullptr;           // [tokens, width] fp32 (before the position bias)
  const float* ape = nullptr;            // [ratio, width] position bias
  const float* norm_weight = nullptr;    // [dim]
  const float* rope_inv_freq = nullptr;  // [rope_dim / 2], the compressed layers' table
  CompressorStateView state;
  PagedRowsView out;  // entries (KV rows) or index keys
  // Main entries only, optional (KvCache::dense_entry_rows; pool null: none): the stored row's
  // values again as dim bf16 (exact), for attention that reads entries without dequantizing.
  PagedRowsView dense_out;
  CompressedKind kind = CompressedKind::kMainKv;
  int32_t ratio = 0;
  int32_t dim = 0;  // at most 1024; index keys: a power of two
  int32_t rope_dim = 0;
  bool overlap = false;
  float norm_eps = 1e-6f;
};

// Pools and stores every completed entry, then updates the partial windows (two kernels).
void compressor_step(const CompressorArgs& args, cudaStream_t stream);

}  // namespace dsv4::cuda
