// Dense rows for prefill: the pass that dequantizes every row of the chunks' regions
// (dense_rows_layout.h) into bf16 (the shared dequant_e4m3x8, the sm_90 kernels' own rule).
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_rows.cuh"
#include "cuda/kernels/attention/sparse_attention_sm90_tiles.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

using sm90_attention::kDim, sm90_attention::kNope, sm90_attention::kRowBytes;
constexpr int kWarps = 4;

__device__ __forceinline__ void dequantize_row(const uint8_t* row, uint16_t* out, int lane) {
  dequantize_kv_row_warp(row, kNope, kDim - kNope, out, lane);
}

// Token t (CTAs (t, 0 ..), a warp a row in turn) writes its own position's row, its share of its
// chunk's entries (every chunk_tokens-th from its index in the chunk) and, for the chunk's first
// token, the older window positions and zeros for the region's positions below 0 (never
// attended, but the previous region's last bulk copy may read on into them, and masked rows must
// be finite: P = 0 times them).
__global__ void __launch_bounds__(32 * kWarps) dense_rows_pass(const SparseAttentionArgs a) {
  wait_for_previous_kernel();
  const AttentionToken k = attention_token(a, int32_t(blockIdx.x));
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int32_t index = k.t - k.chunk_first, n = k.chunk_tokens;
  const int32_t first = k.chunk_pos0 - a.window + 1;  // the region's first window position
  const int32_t last = k.chunk_pos0 + n - 1;
  // Entries read from the bf16 entry pool need no region rows.
  const bool region_entries =
      a.dense.entry_ratio > 0 && a.source != CompressedSource::kNone && !a.dense.entry_pool.pool;
  const int32_t entries = region_entries ? (last + 1) / a.dense.entry_ratio : 0;
  const int32_t older = index == 0 ? k.chunk_pos0 - max(first, 0) : 0;
  const int32_t below_zero = index == 0 ? max(-first, 0) : 0;
  const int64_t base = a.dense.base[k.t];
  const int32_t mine =
      1 + older + below_zero + (entries > index ? (entries - index + n - 1) / n : 0);
  for (int32_t i = warp + kWarps * int32_t(blockIdx.y); i < mine;
       i += kWarps * int32_t(gridDim.y)) {
    uint16_t* out;
    if (i == 0) {
      out = a.dense.rows + dense_window_row(base, a, k, k.pos) * kDim;
      dequantize_row(a.chunk_rows + int64_t(k.t) * kRowBytes, out, lane);
    } else if (i <= older) {
      const int32_t p = k.chunk_pos0 - i;
      out = a.dense.rows + dense_window_row(base, a, k, p) * kDim;
      dequantize_row(a.ring.row(k.slot, p % a.window), out, lane);
    } else if (i <= older + below_zero) {
      out = a.dense.rows + dense_window_row(base, a, k, first + (i - older - 1)) * kDim;
      reinterpret_cast<uint4*>(out)[2 * lane] = make_uint4(0, 0, 0, 0);
      reinterpret_cast<uint4*>(out)[2 * lane + 1] = make_uint4(0, 0, 0, 0);
    } else {
      const int32_t e = index + (i - 1 - older - below_zero) * n;
      out = a.dense.rows + dense_entry_row(base, a, k, e) * kDim;
      dequantize_row(a.entries.row(k.slot, e), out, lane);
    }
  }
}

}  // namespace

void launch_dense_rows_pass(const SparseAttentionArgs& a, cudaStream_t stream) {
  // With the entries in their bf16 copies a token writes at most a window of rows: a warp each,
  // so that short (decode) steps do not wait on a few warps' chains of row loads.
  const auto slices = a.dense.entry_pool.pool ? unsigned((a.window + kWarps - 1) / kWarps) : 1u;
  launch_dependent(dense_rows_pass, dim3(unsigned(a.batch.tokens), slices), 32 * kWarps, 0, stream,
                   a);
}

}  // namespace dsv4::cuda
