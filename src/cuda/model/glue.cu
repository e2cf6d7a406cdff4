#include "cuda/model/glue.h"

#include <cmath>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void bf16_to_f32_kernel(const uint16_t* x, int64_t n, float* out) {
  wait_for_previous_kernel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = bf16_bits_to_float(x[i]);
  }
}

__global__ void scale_bf16_kernel(uint16_t* x, int64_t n, float scale) {
  wait_for_previous_kernel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = float_to_bf16_bits(__fmul_rn(bf16_bits_to_float(x[i]), scale));
  }
}

// One block per row; the row in shared memory. Next step: fuse into the indexer's wq_b GEMM
// epilogue together with the RoPE.
__global__ void __launch_bounds__(kThreads)
    indexer_query_rotate_kernel(uint16_t* x, int dim, float scale) {
  wait_for_previous_kernel();
  extern __shared__ float row[];
  uint16_t* src = x + int64_t(blockIdx.x) * dim;
  for (int c = threadIdx.x; c < dim; c += kThreads) row[c] = bf16_bits_to_float(src[c]);
  __syncthreads();
  for (int half = 1; half < dim; half *= 2) {
    for (int j = threadIdx.x; j < dim / 2; j += kThreads) {
      const int i = (j / half) * 2 * half + (j % half);
      const float u = row[i], v = row[i + half];
      row[i] = __fadd_rn(u, v);
      row[i + half] = __fsub_rn(u, v);
    }
    __syncthreads();
  }
  for (int c = threadIdx.x; c < dim; c += kThreads) row[c] = round_bf16(__fmul_rn(row[c], scale));
  __syncthreads();
  // FP4 round trip: one thread per 32-value block.
  for (int b = threadIdx.x; b < dim / 32; b += kThreads) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = fmaxf(amax, fabsf(row[b * 32 + i]));
    const float s = fp4_block_scale(amax);
    for (int i = 0; i < 32; ++i) {
      const float v = row[b * 32 + i];
      src[b * 32 + i] = float_to_bf16_bits(__fmul_rn(e2m1_to_float(quantize_e2m1(v, s)), s));
    }
  }
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return int(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

void bf16_to_f32(const uint16_t* x, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_dependent(bf16_to_f32_kernel, grid_for(n), kThreads, 0, stream, x, n, out);
}

void scale_bf16(uint16_t* x, int64_t n, float scale, cudaStream_t stream) {
  if (n <= 0) return;
  launch_dependent(scale_bf16_kernel, grid_for(n), kThreads, 0, stream, x, n, scale);
}

void indexer_query_rotate(uint16_t* x, int64_t rows, int64_t dim, cudaStream_t stream) {
  if (dim < 32 || dim > 1024 || (dim & (dim - 1)) != 0) {
    fail("indexer_query_rotate: dim {} is not a power of two in [32, 1024]", dim);
  }
  if (rows <= 0) return;
  const auto scale = float(1.0 / std::sqrt(double(dim)));
  launch_dependent(indexer_query_rotate_kernel, unsigned(rows), kThreads,
                   size_t(dim) * sizeof(float), stream, x, int(dim), scale);
}

}  // namespace dsv4::cuda
