// sparse_attention(): argument checks, the choice of kernel, and the sm_90 plan (split-KV).
#include "cuda/kernels/attention/sparse_attention.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "model/config.h"

namespace dsv4::cuda {
namespace {

constexpr auto kBlockRows = int32_t(kAttentionBlockRows);
// Below this a split costs more than it overlaps (4 blocks made batch 1 and 32 slower by 30%
// and 13%, measured, and left split results as far from the sequential reference).
constexpr int32_t kMinBlocksPerSplit = 2;
constexpr int32_t kHeadsPerCta = 64;  // heads per CTA of the sm_90 kernel

int32_t ceil_div(int32_t a, int32_t b) {
  return (a + b - 1) / b;
}

size_t workspace_bytes(int32_t tokens, int32_t heads, int32_t splits) {
  return sizeof(float) * AttentionWorkspace::floats(tokens, heads, splits);
}

// Split-KV only below one wave of CTAs (the kernel holds one per SM): as many splits of at
// least kMinBlocksPerSplit blocks as fill the SMs and the workspace holds.
AttentionPlan plan_attention(int32_t tokens, int32_t heads, int32_t max_rows, int32_t max_splits,
                             size_t workspace, int sm_count) {
  AttentionPlan plan;
  const int32_t max_blocks = ceil_div(max_rows, kBlockRows);
  plan.blocks_per_split = max_blocks;
  const int32_t ctas = tokens * (heads / kHeadsPerCta);
  int32_t splits = std::min(sm_count / ctas, std::max(1, max_blocks / kMinBlocksPerSplit));
  if (max_splits > 0) splits = std::min(splits, max_splits);
  while (splits > 1 && workspace_bytes(tokens, heads, splits) > workspace) --splits;
  if (splits > 1) {
    plan.blocks_per_split = ceil_div(max_blocks, splits);
    plan.splits = ceil_div(max_blocks, plan.blocks_per_split);
  }
  return plan;
}

}  // namespace

bool sparse_attention_uses_sm90(const SparseAttentionArgs& a) {
  return !a.portable && sm90_kernels_available() && a.head_dim == 512 && a.rope_dim == 64 &&
         a.heads % kHeadsPerCta == 0;
}

bool sparse_attention_dense_rows_pay(const SparseAttentionArgs& a) {
  // Measured at 64K context (H200, bench/RESULTS.md): window and HCA faster from 256 tokens; CSA
  // faster at 128 heads from 256 tokens, at 64 heads for 4096 but not 256 tokens (its pass
  // dequantizes every entry up to the chunk's end, which a short step does not amortize).
  constexpr int32_t kCsaMinTokens = 1024;
  if (!sparse_attention_uses_sm90(a)) return false;
  return a.source != CompressedSource::kList || a.heads >= 128 || a.batch.tokens >= kCsaMinTokens;
}

size_t sparse_attention_workspace_bytes(int32_t max_tokens, int32_t heads, int32_t max_rows,
                                        int32_t max_splits) {
  // Shapes the sm_90 kernel never takes need none.
  if (max_tokens <= 0 || heads <= 0 || heads % kHeadsPerCta != 0 || max_rows <= 0) return 0;
  const int sms = current_device_traits().sm_count;
  // Splits occur only below one CTA per SM.
  size_t most = 0;
  for (int32_t tokens = 1; tokens <= std::min(max_tokens, int32_t(sms)); ++tokens) {
    const AttentionPlan plan = plan_attention(tokens, heads, max_rows, max_splits, SIZE_MAX, sms);
    most = std::max(most, workspace_bytes(tokens, heads, plan.splits));
  }
  return most;
}

void sparse_attention(const SparseAttentionArgs& a, cudaStream_t stream) {
  if (a.heads <= 0 || a.head_dim % 64 != 0 || a.head_dim > 512 || a.rope_dim % 8 != 0 ||
      a.head_dim <= a.rope_dim || (a.head_dim - a.rope_dim) % 64 != 0 || a.window <= 0 || !a.q ||
      !a.out || !a.sink || !a.chunk_rows) {
    fail("sparse_attention: bad arguments (heads {}, head_dim {}, rope_dim {}, window {})", a.heads,
         a.head_dim, a.rope_dim, a.window);
  }
  if ((a.source == CompressedSource::kList &&
       (!a.list || a.list_len < 0 || a.list_stride < a.list_len)) ||
      (a.source == CompressedSource::kAll && a.ratio <= 0)) {
    fail("sparse_attention: bad compressed source (list_len {}, list_stride {}, ratio {})",
         a.list_len, a.list_stride, a.ratio);
  }
  const auto row_bytes = int32_t(KvRowFormat{size_t(a.head_dim), size_t(a.rope_dim)}.bytes());
  if (a.ring.row_bytes != row_bytes ||
      (a.source != CompressedSource::kNone && a.entries.row_bytes != row_bytes)) {
    fail("sparse_attention: paged rows of {} / {} bytes, KV rows are {}", a.ring.row_bytes,
         a.entries.row_bytes, row_bytes);
  }
  if (a.batch.tokens <= 0) return;
  const auto sm90_plan = [&] {
    return plan_attention(a.batch.tokens, a.heads, a.max_rows, a.max_splits,
                          a.workspace ? a.workspace_bytes : 0, current_device_traits().sm_count);
  };
  if (sparse_attention_uses_sm90(a) && a.dense.rows) {
    if (!a.dense.base || a.dense.row_count <= 0 ||
        (a.source != CompressedSource::kNone && a.dense.entry_ratio <= 0)) {
      fail(
          "sparse_attention: dense rows need per-token bases, the row count (got {}) and the "
          "entry ratio (got {})",
          a.dense.row_count, a.dense.entry_ratio);
    }
    const PagedRowsView& pool = a.dense.entry_pool;
    if (pool.pool && (a.source != CompressedSource::kAll || pool.block_rows != kBlockRows ||
                      pool.row_bytes != a.head_dim * 2 || a.window % kBlockRows != 0 ||
                      a.dense.entry_pool_rows <= 0)) {
      fail(
          "sparse_attention: a bf16 entry pool needs HCA entries, pages of {} rows of {} bytes "
          "(got {} of {}), a window of whole blocks (got {}) and its row count (got {})",
          kBlockRows, a.head_dim * 2, pool.block_rows, pool.row_bytes, a.window,
          a.dense.entry_pool_rows);
    }
    // Split-KV as for the main kernel where max_rows is known, in whole pairs of blocks.
    AttentionPlan plan;
    if (a.max_rows > 0) plan = sm90_plan();
    if (plan.splits > 1) {
      const int32_t max_blocks = ceil_div(a.max_rows, kBlockRows);
      plan.blocks_per_split += plan.blocks_per_split % 2;
      plan.splits = ceil_div(max_blocks, plan.blocks_per_split);
    }
    launch_sparse_attention_sm90_dense(a, plan, stream);
  } else if (sparse_attention_uses_sm90(a)) {
    if (a.max_rows <= 0) {
      fail("sparse_attention: the sm_90 kernel needs max_rows (got {})", a.max_rows);
    }
    launch_sparse_attention_sm90(a, sm90_plan(), stream);
  } else {
    launch_sparse_attention_portable(a, row_bytes, stream);
  }
}

}  // namespace dsv4::cuda
