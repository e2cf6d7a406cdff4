// Combine: one block per token. Thread 0 orders the token's k slots by expert id (stable, so a
// repeated expert keeps its choice order, as the CPU's member lists do); then every thread
// sums 8 columns over the k grouped rows with 16-byte loads. Memory-bound: (k + 2) · dim · 2
// bytes per token. Next optimisation: fold it into the w2 GEMM epilogue (each expert tile adds
// into an fp32 accumulator in ascending expert order) to skip the bf16 expert_out round trip.
#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/moe/combine.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 16;

template <int N>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(const uint16_t* expert_out, const int32_t* experts, const int32_t* position,
                   const uint16_t* shared_out, int k, int64_t dim, uint16_t* out) {
  wait_for_previous_kernel();
  __shared__ int32_t rows[kMaxK], ids[kMaxK];
  const int64_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    for (int j = 0; j < k; ++j) {  // insertion sort by expert id, stable
      const int32_t id = experts[t * k + j], row = position[t * k + j];
      int p = j;
      while (p > 0 && ids[p - 1] > id) {
        ids[p] = ids[p - 1];
        rows[p] = rows[p - 1];
        --p;
      }
      ids[p] = id;
      rows[p] = row;
    }
  }
  __syncthreads();
  for (int64_t i = int64_t(threadIdx.x) * N; i < dim; i += int64_t(kThreads) * N) {
    float sum[N];
#pragma unroll
    for (int e = 0; e < N; ++e) sum[e] = 0.0f;
    for (int j = 0; j < k; ++j) {
      float v[N];
      load_bf16<N>(expert_out + int64_t(rows[j]) * dim + i, v);
#pragma unroll
      for (int e = 0; e < N; ++e) sum[e] = __fadd_rn(sum[e], v[e]);
    }
    if (shared_out) {
      float v[N];
      load_bf16<N>(shared_out + t * dim + i, v);
#pragma unroll
      for (int e = 0; e < N; ++e) sum[e] = __fadd_rn(sum[e], v[e]);
    }
    store_bf16<N>(out + t * dim + i, sum);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void moe_combine(const uint16_t* expert_out, const int32_t* experts, const int32_t* position,
                 const uint16_t* shared_out, int64_t tokens, int64_t k, int64_t dim, uint16_t* out,
                 cudaStream_t stream) {
  if (tokens < 0 || k <= 0 || k > kMaxK || dim <= 0) {
    fail("moe_combine: unsupported shape tokens={} k={} dim={}", tokens, k, dim);
  }
  if (tokens == 0) return;
  const bool vec = dim % 8 == 0 && aligned16(expert_out) && aligned16(out) &&
                   (shared_out == nullptr || aligned16(shared_out));
  if (vec) {
    launch_dependent(combine_kernel<8>, unsigned(tokens), kThreads, 0, stream, expert_out, experts,
                     position, shared_out, int(k), dim, out);
  } else {
    launch_dependent(combine_kernel<1>, unsigned(tokens), kThreads, 0, stream, expert_out, experts,
                     position, shared_out, int(k), dim, out);
  }
}

}  // namespace dsv4::cuda
