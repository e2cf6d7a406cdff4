// Compressor step: a pooling kernel with one CTA per token that completes a window (a thread
// per channel: softmax over the window's slots in the CPU's order, then RMSNorm, RoPE and the
// entry's encoding in shared memory), then a state kernel with one CTA per token that stores
// the rows the next steps still need. exp and cos/sin are evaluated in double and rounded
// once (numerics.cuh exp_rn), the correctly rounded values the CPU's glibc returns.
// Next optimisation: the pooling reads every slot three times (max, sum, weighted sum) and
// spends most time in double exp; HCA (ratio 128) entries would profit from keeping the
// exponentials of a channel in shared memory and from a fast exp with a double-checked
// rounding path.
#include <cmath>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/compressor.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDim = 1024;
constexpr int kMaxSlots = 256;  // 2·ratio (overlap) or ratio

__global__ void __launch_bounds__(kThreads) compressor_pool_kernel(const CompressorArgs a) {
  wait_for_previous_kernel();
  __shared__ float x_s[kMaxDim];
  __shared__ const float* kv_rows[kMaxSlots];
  __shared__ const float* gate_rows[kMaxSlots];
  __shared__ const float* ape_rows[kMaxSlots];  // null: the gate row already holds the bias
  __shared__ float red_s[kThreads / 32];
  __shared__ float inv_s;

  const int32_t t = int32_t(blockIdx.x);
  const int32_t pos = a.batch.position[t];
  const int32_t r = a.ratio;
  if (pos % r != r - 1) return;
  const int tid = int(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int32_t w = pos / r, slot = a.batch.slot[t];
  const int32_t first = a.batch.chunk_begin[t], pos0 = a.batch.position[first];
  const int d = a.dim, width = a.overlap ? 2 * d : d;
  const int n_slots = a.overlap ? 2 * r : r;

  // Slot j: the previous window's token j (overlap, j < r; channels [0, d)), else the current
  // window's token j - r (channels [d, 2d) with overlap). Tokens of this chunk come from the
  // inputs, older ones (and the reset state before window 0) from the partial windows.
  for (int j = tid; j < n_slots; j += kThreads) {
    const bool previous = a.overlap && j < r;
    const int32_t s = previous ? j : (a.overlap ? j - r : j);
    const int32_t window = previous ? w - 1 : w;
    const int32_t q = window * r + s;
    const int offset = (a.overlap && !previous) ? d : 0;
    if (q >= pos0) {
      const int64_t row = int64_t(first + (q - pos0)) * width + offset;
      kv_rows[j] = a.kv + row;
      gate_rows[j] = a.gate + row;
      ape_rows[j] = a.ape + int64_t(s) * width + offset;
    } else {
      const int32_t buffer = a.state.buffers == 2 ? (window & 1) : 0;
      const int64_t row =
          slot * a.state.sequence_stride + (int64_t(buffer) * r + s) * width + offset;
      kv_rows[j] = a.state.kv + row;
      gate_rows[j] = a.state.gate + row;
      ape_rows[j] = nullptr;
    }
  }
  __syncthreads();

  // Per channel, as compressor_push: max, Σ exp(l - max), Σ v · (exp(l - max) / Σ).
  for (int c = tid; c < d; c += kThreads) {
    const auto logit = [&](int j) {
      const float g = gate_rows[j][c];
      return ape_rows[j] ? __fadd_rn(g, ape_rows[j][c]) : g;
    };
    float max = -INFINITY;
    for (int j = 0; j < n_slots; ++j) max = fmaxf(max, logit(j));
    float sum = 0.0f;
    for (int j = 0; j < n_slots; ++j) sum = __fadd_rn(sum, exp_rn(logit(j) - max));
    float entry = 0.0f;
    for (int j = 0; j < n_slots; ++j) {
      const float p = exp_rn(logit(j) - max);
      entry = __fadd_rn(entry, __fmul_rn(kv_rows[j][c], __fdiv_rn(p, sum)));
    }
    x_s[c] = round_bf16(entry);
  }
  __syncthreads();

  // RMSNorm (fp32, weight multiplied in fp32, rounded to bf16).
  float squares = 0.0f;
  for (int c = tid; c < d; c += kThreads) squares = __fadd_rn(squares, __fmul_rn(x_s[c], x_s[c]));
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  }
  if (lane == 0) red_s[warp] = squares;
  __syncthreads();
  if (tid == 0) {
    float total = 0.0f;
    for (int i = 0; i < kThreads / 32; ++i) total += red_s[i];
    const float mean_square = __fdiv_rn(total, float(d));
    inv_s = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean_square, a.norm_eps)));
  }
  __syncthreads();
  const float inv = inv_s;
  for (int c = tid; c < d; c += kThreads) {
    x_s[c] = round_bf16(__fmul_rn(a.norm_weight[c], __fmul_rn(x_s[c], inv)));
  }
  __syncthreads();

  // RoPE on the last rope_dim values at the window's first position.
  if (tid < a.rope_dim / 2) {
    const float angle = __fmul_rn(float(w * r), a.rope_inv_freq[tid]);
    double sin_d, cos_d;
    sincos(double(angle), &sin_d, &cos_d);
    const float cs = float(cos_d), sn = float(sin_d);
    float* x = x_s + d - a.rope_dim + 2 * tid;
    const float x0 = x[0], x1 = x[1];
    x[0] = round_bf16(__fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn)));
    x[1] = round_bf16(__fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs)));
  }
  __syncthreads();

  uint8_t* dst = a.out.row(slot, w);
  const auto get = [](int i) { return x_s[i]; };
  if (a.kind == CompressedKind::kMainKv) {
    if (warp != 0) return;
    encode_kv_row_warp(get, d - a.rope_dim, a.rope_dim, a.out.row_bytes, dst, nullptr, lane);
    if (a.dense_out.pool) {
      __syncwarp();  // the warp's stores of the row, read back by other lanes
      auto* copy = reinterpret_cast<uint16_t*>(a.dense_out.row(slot, w));
      dequantize_kv_row_warp(dst, d - a.rope_dim, a.rope_dim, copy, lane);
    }
    return;
  }
  // Index key: Walsh-Hadamard (Sylvester order, the CPU's butterflies), · d^-0.5, bf16, FP4.
  for (int half = 1; half < d; half *= 2) {
    for (int j = tid; j < d / 2; j += kThreads) {
      const int i = (j / half) * 2 * half + (j % half);
      const float u = x_s[i], v = x_s[i + half];
      x_s[i] = __fadd_rn(u, v);
      x_s[i + half] = __fsub_rn(u, v);
    }
    __syncthreads();
  }
  const auto scale = float(1.0 / sqrt(double(d)));
  for (int c = tid; c < d; c += kThreads) x_s[c] = round_bf16(__fmul_rn(x_s[c], scale));
  __syncthreads();
  if (warp == 0) encode_index_key_warp(get, d, dst, lane);
}

// Stores the rows of the windows the next steps still read: the chunk's last window, and
// with overlap also the one before it.
__global__ void __launch_bounds__(kThreads) compressor_state_kernel(const CompressorArgs a) {
  wait_for_previous_kernel();
  const int32_t t = int32_t(blockIdx.x);
  const int32_t pos = a.batch.position[t], r = a.ratio;
  const int32_t w = pos / r;
  const int32_t last_window = a.batch.position[a.batch.chunk_end[t] - 1] / r;
  if (a.overlap ? w < last_window - 1 : w != last_window) return;
  const int32_t s = pos % r;
  const int width = a.overlap ? 2 * a.dim : a.dim;
  const int32_t buffer = a.state.buffers == 2 ? (w & 1) : 0;
  const int64_t row = a.batch.slot[t] * a.state.sequence_stride + (int64_t(buffer) * r + s) * width;
  const float* kv = a.kv + int64_t(t) * width;
  const float* gate = a.gate + int64_t(t) * width;
  const float* ape = a.ape + int64_t(s) * width;
  for (int c = int(threadIdx.x); c < width; c += kThreads) {
    a.state.kv[row + c] = kv[c];
    a.state.gate[row + c] = __fadd_rn(gate[c], ape[c]);
  }
}

}  // namespace

void compressor_step(const CompressorArgs& a, cudaStream_t stream) {
  const bool main = a.kind == CompressedKind::kMainKv;
  const int32_t slots = a.overlap ? 2 * a.ratio : a.ratio;
  bool ok = a.ratio > 0 && slots <= kMaxSlots && a.dim > 0 && a.dim <= kMaxDim && a.rope_dim > 0 &&
            a.rope_dim % 2 == 0 && a.rope_dim <= a.dim && a.state.buffers == (a.overlap ? 2 : 1) &&
            a.kv && a.gate && a.ape && a.norm_weight && a.rope_inv_freq && a.out.pool;
  int32_t row_bytes = 0;
  if (ok && main) {
    ok = (a.dim - a.rope_dim) % 64 == 0 &&
         (!a.dense_out.pool || (a.rope_dim % 16 == 0 && a.dense_out.row_bytes == 2 * a.dim));
    row_bytes = int32_t(KvRowFormat{size_t(a.dim), size_t(a.rope_dim)}.bytes());
  } else if (ok) {
    ok = a.dim % 32 == 0 && (a.dim & (a.dim - 1)) == 0;
    row_bytes = int32_t(IndexKeyFormat{size_t(a.dim)}.bytes());
  }
  if (!ok || a.out.row_bytes != row_bytes) {
    fail(
        "compressor_step: bad arguments (ratio {}, dim {}, rope_dim {}, overlap {}, {} buffers, "
        "rows of {} bytes for {}, bf16 copies of {} bytes)",
        a.ratio, a.dim, a.rope_dim, a.overlap, a.state.buffers, a.out.row_bytes,
        main ? "KV rows" : "index keys", a.dense_out.pool ? a.dense_out.row_bytes : 0);
  }
  if (a.batch.tokens <= 0) return;
  launch_dependent(compressor_pool_kernel, unsigned(a.batch.tokens), kThreads, 0, stream, a);
  launch_dependent(compressor_state_kernel, unsigned(a.batch.tokens), kThreads, 0, stream, a);
}

}  // namespace dsv4::cuda
