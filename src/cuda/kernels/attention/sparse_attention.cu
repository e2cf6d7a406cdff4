// sparse_attention(): argument checks, the choice of kernel, and the split-KV heuristic.
#include "cuda/kernels/attention/sparse_attention.h"

#include <algorithm>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {
namespace {

constexpr int32_t kTileRows = 32;         // rows per tile of the sm_90 kernel
constexpr int32_t kMinTilesPerSplit = 2;  // below this a split costs more than it overlaps
constexpr int32_t kHeadsPerCta = 64;      // heads per CTA of the sm_90 kernel

int32_t ceil_div(int32_t a, int32_t b) {
  return (a + b - 1) / b;
}

AttentionSplit plan_attention_split(const SparseAttentionArgs& a, int sm_count) {
  AttentionSplit plan;
  plan.tiles_per_split = 1 << 24;  // one split takes every tile
  if (a.max_rows <= 0) return plan;
  const int32_t max_tiles = ceil_div(a.max_rows, kTileRows);
  // At most one wave of CTAs (the kernel holds one per SM), at least kMinTilesPerSplit tiles each,
  // as many as the workspace holds.
  const int32_t ctas = a.batch.tokens * (a.heads / kHeadsPerCta);
  int32_t splits = std::min(sm_count / ctas, std::max(1, max_tiles / kMinTilesPerSplit));
  while (splits > 1 &&
         attention_split_workspace_bytes(a.batch.tokens, a.heads, splits) > a.workspace_bytes) {
    --splits;
  }
  if (splits <= 1) return plan;
  plan.tiles_per_split = ceil_div(max_tiles, splits);
  plan.splits = ceil_div(max_tiles, plan.tiles_per_split);
  return plan;
}

}  // namespace

bool sparse_attention_uses_sm90(const SparseAttentionArgs& a) {
#if defined(DSV4_SM90_KERNELS)
  const DeviceTraits& device = current_device_traits();
  return !a.portable && device.major == 9 && a.head_dim == 512 && a.rope_dim == 64 &&
         a.heads % kHeadsPerCta == 0;
#else
  (void)a;
  return false;
#endif
}

size_t sparse_attention_workspace_bytes(int32_t max_tokens, int32_t heads) {
  // Splitting stops at one wave: tokens · groups · splits <= SMs covers every split batch.
  const int sms = current_device_traits().sm_count;
  return std::max(attention_split_workspace_bytes(max_tokens, heads, 1),
                  attention_split_workspace_bytes(1, kHeadsPerCta, sms));
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
    const AttentionSplit split = plan_attention_split(a, current_device_traits().sm_count);
    const size_t needed = attention_split_workspace_bytes(a.batch.tokens, a.heads, split.splits);
    if (!a.workspace || a.workspace_bytes < needed) {
      fail("sparse_attention: the sm_90 kernel needs {} bytes of workspace for {} tokens, got {}",
           needed, a.batch.tokens, a.workspace_bytes);
    }
    launch_sparse_attention_sm90(a, split, stream);
  } else {
    launch_sparse_attention_portable(a, row_bytes, stream);
  }
}

}  // namespace dsv4::cuda
