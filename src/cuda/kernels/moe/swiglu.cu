// SwiGLU epilogue: elementwise, memory-bound (reads 4 bytes, writes 2 per element). The grid
// covers rows × ceil(inter / (8 · threads)); each thread handles 8 elements with 16-byte
// accesses. Next optimisation: fuse into the w1/w3 grouped GEMM's epilogue (and the FP8
// activation quantization of w2's input after it).
#include <algorithm>

#include "core/error.h"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/moe/swiglu.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 128;

template <int N>
__global__ void __launch_bounds__(kThreads)
    swiglu_kernel(const uint16_t* __restrict__ gate, int64_t gate_stride,
                  const uint16_t* __restrict__ up, int64_t up_stride, int64_t inter,
                  const float* __restrict__ route_weights, const int32_t* __restrict__ order,
                  float limit, uint16_t* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const bool weighted = route_weights != nullptr;
  const float weight = weighted ? route_weights[order ? order[row] : row] : 1.0f;
  for (int64_t i = (int64_t(blockIdx.y) * kThreads + threadIdx.x) * N; i < inter;
       i += int64_t(gridDim.y) * kThreads * N) {
    float g[N], u[N], h[N];
    load_bf16<N>(gate + row * gate_stride + i, g);
    load_bf16<N>(up + row * up_stride + i, u);
#pragma unroll
    for (int e = 0; e < N; ++e) {
      float ge = g[e], ue = u[e];
      if (limit > 0.0f) {
        ue = fminf(fmaxf(ue, -limit), limit);  // std::clamp(u, −L, L)
        ge = fminf(ge, limit);                 // std::min(g, L)
      }
      // g / (1 + exp(−g)) · u, then · weight: the CPU's order, each step rounded.
      float v = __fmul_rn(__fdiv_rn(ge, __fadd_rn(1.0f, exp_rn(-ge))), ue);
      if (weighted) v = __fmul_rn(v, weight);
      h[e] = v;
    }
    store_bf16<N>(out + row * inter + i, h);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void swiglu(const uint16_t* gate, int64_t gate_stride, const uint16_t* up, int64_t up_stride,
            int64_t rows, int64_t inter, const float* route_weights, const int32_t* order,
            float limit, uint16_t* out, cudaStream_t stream) {
  if (rows < 0 || inter <= 0 || gate_stride < inter || up_stride < inter) {
    fail("swiglu: bad shape rows={} inter={} strides {} {}", rows, inter, gate_stride, up_stride);
  }
  if (rows == 0) return;
  const bool vec = inter % 8 == 0 && gate_stride % 8 == 0 && up_stride % 8 == 0 &&
                   aligned16(gate) && aligned16(up) && aligned16(out);
  const int64_t per_block = int64_t(kThreads) * (vec ? 8 : 1);
  const dim3 grid(unsigned(rows),
                  unsigned(std::min<int64_t>(65535, (inter + per_block - 1) / per_block)));
  if (vec) {
    swiglu_kernel<8><<<grid, kThreads, 0, stream>>>(gate, gate_stride, up, up_stride, inter,
                                                    route_weights, order, limit, out);
  } else {
    swiglu_kernel<1><<<grid, kThreads, 0, stream>>>(gate, gate_stride, up, up_stride, inter,
                                                    route_weights, order, limit, out);
  }
  DSV4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dsv4::cuda
