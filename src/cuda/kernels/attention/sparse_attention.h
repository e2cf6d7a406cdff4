// Sparse attention with sink (MODEL.md §2 step 7), the twin of cpu::attend_head over the list
// that src/cpu/attention.cpp gathers, laid out as DeepSeek's reference lays it out: for the
// query token at position p, `window` window entries (positions max(0, p - window + 1) .. p,
// masked beyond p), then the compressed entries (CSA: the indexer's list, -1 entries masked;
// HCA: every entry w < (p + 1) / ratio). Rows are KvRowFormat bytes (e4m3 nope + bf16 rope),
// dequantized in the kernel; v_i = k_i. The reference's online softmax over 64-entry blocks:
//   s_i = scale · q·k_i (fp32); per block m grows to max(m, max_i s_i), O and Σ are rescaled by
//   exp(m_old − m_new), Σ += exp(s_i − m), O += bf16(exp(s_i − m)) · v_i;
//   o = O / (Σ + exp(sink_h − m)), output bf16.
// Decode and prefill chunks alike; inverse RoPE of the output is left to the caller.
//
// Three implementations, same results within rounding: on sm_90 for head_dim 512 / rope_dim 64
// and heads in multiples of 64, a one-pass warp-specialised wgmma kernel, split over several
// CTAs per token when there are few tokens (each split runs its own maximum; a second launch
// in the same stream merges them), or, when the caller provides dense rows (prefill; HCA decode
// from the bf16 entry copies), a pass that dequantizes the chunks' rows once and a kernel whose
// two warpgroups take alternate blocks, split the same way; elsewhere the portable sm_80 kernel
// (mma.sync). None synchronises with the host; all are graph-capturable.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/attention/kv_views.h"

namespace dsv4::cuda {

enum class CompressedSource {
  kNone,  // sliding-window layers
  kList,  // CSA: list[t · list_stride + i], i < list_len, -1 = no entry
  kAll,   // HCA: entries 0 .. (p + 1) / ratio - 1
};

// Rows as bf16 (optional, sm_90): before attending, every row a chunk's tokens can read is
// dequantized once into `rows`, one region per chunk (dense_rows_layout), so the tokens that share
// rows (all of a long prompt's) gather them without dequantizing each time. With entry_pool set
// (HCA layers, KvCache::dense_entry_rows: bf16 copies the compressor keeps), the compressed
// entries come from there, 64-entry pages by bulk copies, and the regions hold only the window
// rows (dense_rows_layout with entry ratio 0): decode steps then dequantize nothing but windows.
struct DenseRowsView {
  uint16_t* rows = nullptr;       // bf16 [rows][head_dim], dense_rows_layout's total
  const int32_t* base = nullptr;  // per token: the first row of its chunk's region
  int32_t entry_ratio = 0;        // positions per compressed entry (CSA or HCA ratio); 0: none
  int64_t row_count = 0;          // dense_rows_layout's total (the kernel's bulk copies stop there)
  PagedRowsView entry_pool;       // bf16 rows of head_dim, pages of one attention block; or none
  int64_t entry_pool_rows = 0;    // rows in entry_pool.pool
};

struct SparseAttentionArgs {
  TokenBatchView batch;         // slot, position, chunk_begin used
  const uint16_t* q = nullptr;  // bf16 [tokens, heads, head_dim]
  const float* sink = nullptr;  // [heads]
  uint16_t* out = nullptr;      // bf16 [tokens, heads, head_dim]
  int32_t heads = 0;
  int32_t head_dim = 0;  // multiple of 64, at most 512
  int32_t rope_dim = 0;  // multiple of 8
  float scale = 0.0f;    // head_dim^-0.5
  // Window rows: positions >= the chunk's first position come from chunk_rows (this step's
  // rows, [tokens, row_bytes] in batch order, see kv_write.h); older ones from the ring.
  int32_t window = 0;
  const uint8_t* chunk_rows = nullptr;
  PagedRowsView ring;
  CompressedSource source = CompressedSource::kNone;
  PagedRowsView entries;
  const int32_t* list = nullptr;  // kList
  int32_t list_stride = 0;
  int32_t list_len = 0;
  int32_t ratio = 0;  // kAll
  // The sm_90 kernel needs max_rows, an upper bound on any token's list (window + compressed
  // entries), to plan split-KV, which uses a workspace of sparse_attention_workspace_bytes();
  // with a smaller workspace (or none) it splits less (or not at all).
  int32_t max_rows = 0;
  float* workspace = nullptr;
  size_t workspace_bytes = 0;
  int32_t max_splits = 0;  // 0: split-KV where it pays; n: at most n CTAs per token
  bool portable = false;   // use the portable kernel even where the sm_90 one applies
  DenseRowsView dense;     // set: the sm_90 kernel reads dequantized rows
};

// Workspace for the sm_90 kernel's split-KV partials of any batch up to max_tokens tokens of
// lists up to max_rows long (every split it would choose on this device with
// args.max_splits = max_splits).
size_t sparse_attention_workspace_bytes(int32_t max_tokens, int32_t heads, int32_t max_rows,
                                        int32_t max_splits = 0);

// Whether `args` run on the sm_90 kernel on the current device (an sm_90 GPU, head_dim 512,
// rope_dim 64, heads a multiple of 64, and not args.portable).
bool sparse_attention_uses_sm90(const SparseAttentionArgs& args);

// Whether dense rows (args.dense) are expected to beat the main sm_90 kernel for a prefill step
// of `args`: blocks that are runs of rows (window; HCA's entries) load by bulk tensor copies, but
// CSA's chosen entries are gathered row by row, which loses in short steps at 64 heads
// (bench/RESULTS.md).
bool sparse_attention_dense_rows_pay(const SparseAttentionArgs& args);

void sparse_attention(const SparseAttentionArgs& args, cudaStream_t stream);

}  // namespace dsv4::cuda
