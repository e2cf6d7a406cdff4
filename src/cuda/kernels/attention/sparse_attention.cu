// sparse_attention(): argument checks, the choice of kernel, and the sm_90 plan (tokens per
// launch, split-KV).
#include "cuda/kernels/attention/sparse_attention.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {
namespace {

constexpr int32_t kTileRows = 32;         // rows per tile of the sm_90 kernels
constexpr int32_t kMinTilesPerSplit = 2;  // below this a split costs more than it overlaps
constexpr int32_t kHeadsPerCta = 64;      // heads per CTA of the sm_90 kernels
constexpr size_t kScoreBudgetBytes = size_t(256) << 20;  // scores per launch, for sizing

int32_t ceil_div(int32_t a, int32_t b) {
  return (a + b - 1) / b;
}

size_t workspace_bytes(int32_t tokens, int32_t heads, int32_t splits, int32_t score_stride) {
  return sizeof(float) * AttentionWorkspace::floats(tokens, heads, splits, score_stride);
}

// Launches of equal size with as many tokens as the workspace holds (at most `tokens`), then
// splits: at most one wave of CTAs (the kernels hold one per SM), at least kMinTilesPerSplit
// tiles each, as many as the workspace holds. tokens_per_launch = 0: not even one token fits.
AttentionPlan plan_attention(int32_t tokens, int32_t heads, int32_t max_rows, int32_t max_splits,
                             size_t workspace, int sm_count) {
  AttentionPlan plan;
  const int32_t max_tiles = ceil_div(max_rows, kTileRows);
  plan.score_stride = max_tiles * kTileRows;
  plan.tiles_per_split = max_tiles;
  const size_t per_token = workspace_bytes(1, heads, 1, plan.score_stride);
  const auto fit = int32_t(std::min<size_t>(size_t(tokens), workspace / per_token));
  if (fit == 0) return plan;
  // Equal launches: 128 tokens where 120 fit run as 64 + 64, not 120 + 8.
  const int32_t launches = ceil_div(tokens, fit);
  plan.tokens_per_launch = ceil_div(tokens, launches);
  const int32_t ctas = plan.tokens_per_launch * (heads / kHeadsPerCta);
  int32_t splits = std::min(sm_count / ctas, std::max(1, max_tiles / kMinTilesPerSplit));
  if (max_splits > 0) splits = std::min(splits, max_splits);
  while (splits > 1 &&
         workspace_bytes(plan.tokens_per_launch, heads, splits, plan.score_stride) > workspace) {
    --splits;
  }
  if (splits > 1) {
    plan.tiles_per_split = ceil_div(max_tiles, splits);
    plan.splits = ceil_div(max_tiles, plan.tiles_per_split);
  }
  return plan;
}

}  // namespace

bool sparse_attention_uses_sm90(const SparseAttentionArgs& a) {
  return !a.portable && sm90_kernels_available() && a.head_dim == 512 && a.rope_dim == 64 &&
         a.heads % kHeadsPerCta == 0;
}

size_t sparse_attention_workspace_bytes(int32_t max_tokens, int32_t heads, int32_t max_rows,
                                        int32_t max_splits) {
  // Shapes the sm_90 kernels never take need none.
  if (max_tokens <= 0 || heads <= 0 || heads % kHeadsPerCta != 0 || max_rows <= 0) return 0;
  const int sms = current_device_traits().sm_count;
  const int32_t stride = ceil_div(max_rows, kTileRows) * kTileRows;
  const auto cap = int32_t(std::clamp<size_t>(
      kScoreBudgetBytes / workspace_bytes(1, heads, 1, stride), 1, size_t(max_tokens)));
  // The plan of any batch up to max_tokens with all the workspace it may want: splits occur
  // only below one CTA per SM.
  size_t most = 0;
  for (int32_t tokens = 1; tokens <= std::min(cap, int32_t(sms)); ++tokens) {
    const AttentionPlan plan = plan_attention(tokens, heads, max_rows, max_splits, SIZE_MAX, sms);
    most = std::max(most, workspace_bytes(tokens, heads, plan.splits, stride));
  }
  return std::max(most, workspace_bytes(cap, heads, 1, stride));
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
  if (sparse_attention_uses_sm90(a)) {
    if (a.max_rows <= 0 || !a.workspace) {
      fail("sparse_attention: the sm_90 kernels need max_rows (got {}) and a workspace",
           a.max_rows);
    }
    const AttentionPlan plan = plan_attention(a.batch.tokens, a.heads, a.max_rows, a.max_splits,
                                              a.workspace_bytes, current_device_traits().sm_count);
    if (plan.tokens_per_launch == 0) {
      fail(
          "sparse_attention: a workspace of {} bytes holds no token's scores ({} needed for "
          "{} heads x {} rows)",
          a.workspace_bytes, sparse_attention_workspace_bytes(1, a.heads, a.max_rows), a.heads,
          a.max_rows);
    }
    for (int32_t first = 0; first < a.batch.tokens; first += plan.tokens_per_launch) {
      launch_sparse_attention_sm90(
          a, plan, first, std::min(plan.tokens_per_launch, a.batch.tokens - first), stream);
    }
  } else {
    launch_sparse_attention_portable(a, row_bytes, stream);
  }
}

}  // namespace dsv4::cuda
