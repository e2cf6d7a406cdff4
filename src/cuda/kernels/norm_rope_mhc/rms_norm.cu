// RMSNorm kernels. Both are memory-bound (read x once from HBM, again from L1/L2, write y).
// rms_norm: one block per row (a 4096-wide row is 512 16-byte vectors, two per thread);
// unweighted_head_norm: one warp per head row. The sum of squares is a tree in fp32, so it
// differs from the CPU's sequential sum in the last bits and a bf16 output can differ by one
// ulp on rare elements. Next optimisation: keep the row in registers between the two passes
// and fuse the norms into their neighbours (the mHC collapse before, RoPE after).
#include "cuda/kernels/norm_rope_mhc/rms_norm.h"

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kRowThreads = 256;
constexpr int kHeadThreads = 256;  // eight head rows per block

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// N values per access: 8 when rows are 16-byte aligned, else 1.
template <int N>
__global__ void __launch_bounds__(kRowThreads)
    rms_norm_kernel(const uint16_t* x, int64_t dim, const float* __restrict__ weight, float eps,
                    uint16_t* y) {
  wait_for_previous_kernel();
  const uint16_t* xr = x + int64_t(blockIdx.x) * dim;
  uint16_t* yr = y + int64_t(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int64_t i = int64_t(threadIdx.x) * N; i < dim; i += int64_t(kRowThreads) * N) {
    float v[N];
    load_bf16<N>(xr + i, v);
#pragma unroll
    for (int e = 0; e < N; ++e) sum = fmaf(v[e], v[e], sum);
  }
  __shared__ float warp_sums[kRowThreads / 32];
  __shared__ float inv_shared;
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < kRowThreads / 32; ++w) total += warp_sums[w];
    const float mean_square = __fdiv_rn(total, float(dim));
    inv_shared = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean_square, eps)));
  }
  __syncthreads();
  const float inv = inv_shared;
  for (int64_t i = int64_t(threadIdx.x) * N; i < dim; i += int64_t(kRowThreads) * N) {
    float v[N];
    load_bf16<N>(xr + i, v);
    float w[N];
    if constexpr (N == 8) {
      const float4 w0 = *reinterpret_cast<const float4*>(weight + i);
      const float4 w1 = *reinterpret_cast<const float4*>(weight + i + 4);
      w[0] = w0.x, w[1] = w0.y, w[2] = w0.z, w[3] = w0.w;
      w[4] = w1.x, w[5] = w1.y, w[6] = w1.z, w[7] = w1.w;
    } else {
      w[0] = weight[i];
    }
#pragma unroll
    for (int e = 0; e < N; ++e) v[e] = __fmul_rn(w[e], __fmul_rn(v[e], inv));
    store_bf16<N>(yr + i, v);
  }
}

template <int N>
__global__ void __launch_bounds__(kHeadThreads)
    head_norm_kernel(uint16_t* x, int64_t rows, int64_t dim, float eps) {
  wait_for_previous_kernel();
  const int64_t row = int64_t(blockIdx.x) * (kHeadThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  uint16_t* xr = x + row * dim;
  float sum = 0.0f;
  for (int64_t i = int64_t(lane) * N; i < dim; i += 32 * N) {
    float v[N];
    load_bf16<N>(xr + i, v);
#pragma unroll
    for (int e = 0; e < N; ++e) sum = __fadd_rn(sum, round_bf16(__fmul_rn(v[e], v[e])));
  }
  sum = warp_sum(sum);
  const float mean = round_bf16(__fdiv_rn(sum, float(dim)));
  const float inv = round_bf16(__fdiv_rn(1.0f, __fsqrt_rn(round_bf16(__fadd_rn(mean, eps)))));
  for (int64_t i = int64_t(lane) * N; i < dim; i += 32 * N) {
    float v[N];
    load_bf16<N>(xr + i, v);
#pragma unroll
    for (int e = 0; e < N; ++e) v[e] = __fmul_rn(v[e], inv);
    store_bf16<N>(xr + i, v);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void rms_norm(const uint16_t* x, int64_t rows, int64_t dim, const float* weight, float eps,
              uint16_t* y, cudaStream_t stream) {
  if (rows < 0 || dim <= 0) fail("rms_norm: bad shape rows={} dim={}", rows, dim);
  if (rows == 0) return;
  if (dim % 8 == 0 && aligned16(x) && aligned16(y) && aligned16(weight)) {
    launch_dependent(rms_norm_kernel<8>, unsigned(rows), kRowThreads, 0, stream, x, dim, weight,
                     eps, y);
  } else {
    launch_dependent(rms_norm_kernel<1>, unsigned(rows), kRowThreads, 0, stream, x, dim, weight,
                     eps, y);
  }
}

void unweighted_head_norm(uint16_t* x, int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  if (rows < 0 || dim <= 0) fail("unweighted_head_norm: bad shape rows={} dim={}", rows, dim);
  if (rows == 0) return;
  const auto blocks = unsigned((rows + kHeadThreads / 32 - 1) / (kHeadThreads / 32));
  if (dim % 8 == 0 && aligned16(x)) {
    launch_dependent(head_norm_kernel<8>, blocks, kHeadThreads, 0, stream, x, rows, dim, eps);
  } else {
    launch_dependent(head_norm_kernel<1>, blocks, kHeadThreads, 0, stream, x, rows, dim, eps);
  }
}

}  // namespace dsv4::cuda
