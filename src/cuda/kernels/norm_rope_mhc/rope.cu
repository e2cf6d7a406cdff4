// RoPE kernel: one block per row (token). The block first evaluates cos/sin of pos · f_i for
// the row's pairs into shared memory (in double, then rounded: the correctly rounded float,
// which is what glibc's cosf/sinf return on the CPU side in all but rare cases), then rotates
// that slice of every head. Memory-bound and tiny (rope_dim of 512 per head); the next
// optimisation is fusing it into the head norm / KV-row writer that touches the same bytes.
#include "core/error.h"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxPairs = 64;

__global__ void __launch_bounds__(kThreads)
    rope_kernel(uint16_t* x, int64_t heads, int64_t head_dim, int64_t row_stride,
                const float* __restrict__ inv_freq, int pairs,
                const int32_t* __restrict__ positions, bool inverse) {
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
  uint16_t* xr = x + row * row_stride + (head_dim - 2 * pairs);
  const int64_t total = heads * pairs;
  for (int64_t p = threadIdx.x; p < total; p += kThreads) {
    const int64_t head = p / pairs;
    const int i = int(p - head * pairs);
    uint16_t* pair = xr + head * head_dim + 2 * i;
    const float a = bf16_bits_to_float(pair[0]), b = bf16_bits_to_float(pair[1]);
    const float c = cos_shared[i], s = sin_shared[i];
    // a·c − b·s and a·s + b·c, each product and sum rounded (the CPU compiles without FMA
    // contraction).
    pair[0] = float_to_bf16_bits(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    pair[1] = float_to_bf16_bits(__fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)));
  }
}

}  // namespace

void apply_rope(uint16_t* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t row_stride,
                const RopeTable& table, const int32_t* positions, bool inverse,
                cudaStream_t stream) {
  const int64_t rope_dim = table.rope_dim();
  if (rows < 0 || heads <= 0 || head_dim < rope_dim || row_stride < heads * head_dim) {
    fail("apply_rope: bad shape rows={} heads={} head_dim={} row_stride={} rope_dim={}", rows,
         heads, head_dim, row_stride, rope_dim);
  }
  if (rows == 0) return;
  rope_kernel<<<unsigned(rows), kThreads, 0, stream>>>(
      x, heads, head_dim, row_stride, table.inv_freq(), int(rope_dim / 2), positions, inverse);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dsv4::cuda
