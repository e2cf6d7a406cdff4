// SwiGLU epilogue: elementwise, memory-bound (reads 4 bytes, writes 2 per element, or 1 and a
// scale per 128 when it quantizes for w2). swiglu: the grid covers rows × ceil(inter / (8 ·
// threads)), each thread 8 elements with 16-byte accesses; swiglu_quantize_fp8: a warp per
// 128-element block, four elements a lane. Next optimisation: fuse into the w1/w3 grouped
// GEMM's epilogue.
#include <algorithm>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/moe/swiglu.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kQuantizeWarps = kThreads / 32;

// silu(min(g, L)) · clamp(u, −L, L) (no clamp when limit <= 0), times the routing weight when
// there is one: g / (1 + exp(−g)) · u, then · weight, the CPU's order, each step rounded.
__device__ __forceinline__ float swiglu_value(float g, float u, float limit, bool weighted,
                                              float weight) {
  if (limit > 0.0f) {
    u = fminf(fmaxf(u, -limit), limit);  // std::clamp(u, −L, L)
    g = fminf(g, limit);                 // std::min(g, L)
  }
  const float v = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, exp_rn(-g))), u);
  return weighted ? __fmul_rn(v, weight) : v;
}

template <int N>
__global__ void __launch_bounds__(kThreads)
    swiglu_kernel(const uint16_t* gate, int64_t gate_stride, const uint16_t* up, int64_t up_stride,
                  int64_t inter, const float* route_weights, const int32_t* order, float limit,
                  uint16_t* out) {
  wait_for_previous_kernel();
  const int64_t row = blockIdx.x;
  const bool weighted = route_weights != nullptr;
  const float weight = weighted ? route_weights[order ? order[row] : row] : 1.0f;
  for (int64_t i = (int64_t(blockIdx.y) * kThreads + threadIdx.x) * N; i < inter;
       i += int64_t(gridDim.y) * kThreads * N) {
    float g[N], u[N], h[N];
    load_bf16<N>(gate + row * gate_stride + i, g);
    load_bf16<N>(up + row * up_stride + i, u);
#pragma unroll
    for (int e = 0; e < N; ++e) h[e] = swiglu_value(g[e], u[e], limit, weighted, weight);
    store_bf16<N>(out + row * inter + i, h);
  }
}

// Warp w of CTA (row, y) quantizes block 4y + w of the row's bf16 h values.
__global__ void __launch_bounds__(kThreads)
    swiglu_quantize_kernel(const uint16_t* gate, int64_t gate_stride, const uint16_t* up,
                           int64_t up_stride, int64_t inter, const float* route_weights,
                           const int32_t* order, float limit, uint8_t* codes, float* scales) {
  wait_for_previous_kernel();
  const int64_t row = blockIdx.x;
  const int64_t block = int64_t(blockIdx.y) * kQuantizeWarps + (threadIdx.x >> 5);
  if (block * 128 >= inter) return;
  const int lane = int(threadIdx.x & 31u);
  const bool weighted = route_weights != nullptr;
  const float weight = weighted ? route_weights[order ? order[row] : row] : 1.0f;
  const int64_t i = block * 128 + lane * 4;
  float g[4], u[4], h[4];
  load_bf16<4>(gate + row * gate_stride + i, g);
  load_bf16<4>(up + row * up_stride + i, u);
#pragma unroll
  for (int e = 0; e < 4; ++e) h[e] = round_bf16(swiglu_value(g[e], u[e], limit, weighted, weight));
  float scale;
  *reinterpret_cast<uint32_t*>(codes + row * inter + i) = quantize_fp8_block128(h, scale);
  if (lane == 0) scales[row * (inter / 128) + block] = scale;
}

bool aligned(const void* p, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
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
                   aligned(gate, 16) && aligned(up, 16) && aligned(out, 16);
  const int64_t per_block = int64_t(kThreads) * (vec ? 8 : 1);
  const dim3 grid(unsigned(rows),
                  unsigned(std::min<int64_t>(65535, (inter + per_block - 1) / per_block)));
  if (vec) {
    launch_dependent(swiglu_kernel<8>, grid, kThreads, 0, stream, gate, gate_stride, up, up_stride,
                     inter, route_weights, order, limit, out);
  } else {
    launch_dependent(swiglu_kernel<1>, grid, kThreads, 0, stream, gate, gate_stride, up, up_stride,
                     inter, route_weights, order, limit, out);
  }
}

void swiglu_quantize_fp8(const uint16_t* gate, int64_t gate_stride, const uint16_t* up,
                         int64_t up_stride, int64_t rows, int64_t inter, const float* route_weights,
                         const int32_t* order, float limit, uint8_t* codes, float* scales,
                         cudaStream_t stream) {
  if (rows < 0 || inter <= 0 || inter % 128 != 0 || gate_stride < inter || up_stride < inter ||
      gate_stride % 4 != 0 || up_stride % 4 != 0) {
    fail("swiglu_quantize_fp8: bad shape rows={} inter={} (a multiple of 128) strides {} {}", rows,
         inter, gate_stride, up_stride);
  }
  if (!aligned(gate, 8) || !aligned(up, 8) || !aligned(codes, 4)) {
    fail("swiglu_quantize_fp8: gate, up or codes misaligned");
  }
  if (rows == 0) return;
  const int64_t blocks = inter / 128;
  const dim3 grid(unsigned(rows), unsigned((blocks + kQuantizeWarps - 1) / kQuantizeWarps));
  launch_dependent(swiglu_quantize_kernel, grid, kThreads, 0, stream, gate, gate_stride, up,
                   up_stride, inter, route_weights, order, limit, codes, scales);
}

}  // namespace dsv4::cuda
