// KV row writer: one warp per token row (d = 512: 7 FP8 blocks of 64 values on 4 groups of 8
// lanes, then the 64 bf16 rope values). Tiny and memory-bound; the next optimisation is
// fusing it into the kernel that produces the row (kv_norm + RoPE), which already holds it.
#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/attention/kv_write.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ bool in_ring(const TokenBatchView& batch, int32_t t, int32_t window) {
  const int32_t last = batch.position[batch.chunk_end[t] - 1];
  return batch.position[t] > last - window;
}

__global__ void __launch_bounds__(kThreads) write_kv_rows_kernel(KvWriteArgs a, int32_t row_bytes) {
  wait_for_previous_kernel();
  const int32_t t = int32_t(blockIdx.x) * kWarps + int32_t(threadIdx.x / 32);
  if (t >= a.batch.tokens) return;
  const int lane = int(threadIdx.x % 32);
  const uint16_t* src = a.kv + int64_t(t) * a.head_dim;
  uint8_t* chunk = a.chunk_rows ? a.chunk_rows + int64_t(t) * row_bytes : nullptr;
  uint8_t* ring = nullptr;
  if (a.ring.pool && in_ring(a.batch, t, a.window)) {
    ring = a.ring.row(a.batch.slot[t], a.batch.position[t] % a.window);
  }
  if (!chunk) {
    chunk = ring;
    ring = nullptr;
  }
  if (!chunk) return;
  const auto get = [src](int i) { return bf16_bits_to_float(src[i]); };
  encode_kv_row_warp(get, a.head_dim - a.rope_dim, a.rope_dim, row_bytes, chunk, ring, lane);
}

__global__ void __launch_bounds__(kThreads)
    commit_window_rows_kernel(TokenBatchView batch, const uint8_t* chunk_rows, PagedRowsView ring,
                              int32_t window) {
  wait_for_previous_kernel();
  const int32_t t = int32_t(blockIdx.x) * kWarps + int32_t(threadIdx.x / 32);
  if (t >= batch.tokens || !in_ring(batch, t, window)) return;
  const auto* src = reinterpret_cast<const uint32_t*>(chunk_rows + int64_t(t) * ring.row_bytes);
  auto* dst = reinterpret_cast<uint32_t*>(ring.row(batch.slot[t], batch.position[t] % window));
  for (int w = int(threadIdx.x % 32); w < ring.row_bytes / 4; w += 32) dst[w] = src[w];
}

}  // namespace

void write_kv_rows(const KvWriteArgs& args, cudaStream_t stream) {
  if (args.head_dim <= args.rope_dim || (args.head_dim - args.rope_dim) % 64 != 0 ||
      args.rope_dim % 2 != 0 || (args.ring.pool && args.window <= 0)) {
    fail("write_kv_rows: bad shape head_dim {} rope_dim {} window {}", args.head_dim, args.rope_dim,
         args.window);
  }
  const auto row_bytes = int32_t(KvRowFormat{size_t(args.head_dim), size_t(args.rope_dim)}.bytes());
  if (args.ring.pool && args.ring.row_bytes != row_bytes) {
    fail("write_kv_rows: ring rows of {} bytes, KV rows are {}", args.ring.row_bytes, row_bytes);
  }
  if (args.batch.tokens <= 0) return;
  const unsigned blocks = unsigned((args.batch.tokens + kWarps - 1) / kWarps);
  launch_dependent(write_kv_rows_kernel, blocks, kThreads, 0, stream, args, row_bytes);
}

void commit_window_rows(const TokenBatchView& batch, const uint8_t* chunk_rows,
                        const PagedRowsView& ring, int32_t window, cudaStream_t stream) {
  if (window <= 0 || ring.row_bytes % 4 != 0) {
    fail("commit_window_rows: window {} row_bytes {}", window, ring.row_bytes);
  }
  if (batch.tokens <= 0) return;
  const unsigned blocks = unsigned((batch.tokens + kWarps - 1) / kWarps);
  launch_dependent(commit_window_rows_kernel, blocks, kThreads, 0, stream, batch, chunk_rows, ring,
                   window);
}

}  // namespace dsv4::cuda
