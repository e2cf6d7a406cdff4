// RoPE kernel: a block per (row, 1024 of the row's rotated pairs). The block first evaluates
// cos/sin of pos · f_i for the row's pairs into shared memory (in double, then rounded: the
// correctly rounded float, which is what glibc's cosf/sinf return on the CPU side in all but
// rare cases), then rotates its pairs, four a thread with their loads in flight together. A
// launch takes ~7 us (H200), most of it the double-precision sincos and the launch itself: the
// next optimisation is fusing it into the head norm / KV-row writer that touch the same bytes.
#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPairsPerThread = 4;
constexpr int kPairsPerBlock = kThreads * kPairsPerThread;
constexpr int kMaxPairs = 64;

__global__ void __launch_bounds__(kThreads)
    rope_kernel(uint16_t* x, int64_t heads, int64_t head_dim, int64_t row_stride,
                const float* __restrict__ inv_freq, int pairs, const int32_t* positions,
                bool inverse) {
  wait_for_previous_kernel();
  __shared__ float cos_shared[kMaxPairs], sin_shared[kMaxPairs];
  const int64_t row = blockIdx.x;
  if (threadIdx.x < pairs) {
    // As cpu::Rope::apply: angle = float(position) · f_i in fp32.
    const float angle = __fmul_rn(float(positions[row]), inv_freq[threadIdx.x]);
    double s, c;
    sincos(double(angle), &s, &c);
    cos_shared[threadIdx.x] = float(c);
    sin_shared[threadIdx.x] = inverse ? -float(s) : float(s);
  }
  __syncthreads();
  // A pair is two adjacent bf16 values, 4-byte aligned.
  uint16_t* xr = x + row * row_stride + (head_dim - 2 * pairs);
  const int64_t total = heads * pairs;
  const int64_t first = int64_t(blockIdx.y) * kPairsPerBlock + threadIdx.x;
  uint32_t* at[kPairsPerThread];
  uint32_t bits[kPairsPerThread];
  int index[kPairsPerThread];
#pragma unroll
  for (int u = 0; u < kPairsPerThread; ++u) {
    const int64_t p = first + int64_t(u) * kThreads;
    const int64_t head = p / pairs;
    index[u] = int(p - head * pairs);
    at[u] = p < total ? reinterpret_cast<uint32_t*>(xr + head * head_dim + 2 * index[u]) : nullptr;
    bits[u] = at[u] ? *at[u] : 0u;
  }
#pragma unroll
  for (int u = 0; u < kPairsPerThread; ++u) {
    if (!at[u]) continue;
    const float a = bf16_bits_to_float(uint16_t(bits[u] & 0xffffu));
    const float b = bf16_bits_to_float(uint16_t(bits[u] >> 16));
    const float c = cos_shared[index[u]], s = sin_shared[index[u]];
    // a·c − b·s and a·s + b·c, each product and sum rounded (the CPU compiles without FMA
    // contraction).
    const uint32_t lo = float_to_bf16_bits(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    const uint32_t hi = float_to_bf16_bits(__fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)));
    *at[u] = lo | (hi << 16);
  }
}

}  // namespace

void apply_rope(uint16_t* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t row_stride,
                const RopeTable& table, const int32_t* positions, bool inverse,
                cudaStream_t stream) {
  const int64_t rope_dim = table.rope_dim();
  if (rows < 0 || heads <= 0 || head_dim < rope_dim || row_stride < heads * head_dim ||
      rope_dim > 2 * kMaxPairs || head_dim % 2 != 0 || row_stride % 2 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 4 != 0) {
    fail(
        "apply_rope: bad shape rows={} heads={} head_dim={} row_stride={} rope_dim={} (even "
        "sizes, at most {} rotated dims, 4-byte aligned rows)",
        rows, heads, head_dim, row_stride, rope_dim, 2 * kMaxPairs);
  }
  if (rows == 0) return;
  const int64_t blocks_per_row = (heads * (rope_dim / 2) + kPairsPerBlock - 1) / kPairsPerBlock;
  launch_dependent(rope_kernel, dim3(unsigned(rows), unsigned(blocks_per_row)), kThreads, 0, stream,
                   x, heads, head_dim, row_stride, table.inv_freq(), int(rope_dim / 2), positions,
                   inverse);
}

}  // namespace dsv4::cuda
