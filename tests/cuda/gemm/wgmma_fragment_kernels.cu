// The register-A layout of the FP8 warpgroup MMA, as wgmma.cuh states it: thread (warp w, lane
// l) packs rows 16w + l/4 (+ 8) and k 4·(l%4) .. +3 (+ 16) of A; B sits in a 128-byte-swizzled
// row per token.
#include "gemm/wgmma_fragment_kernels.h"

#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

__global__ void __launch_bounds__(128)
    m64n8k32_e4m3_kernel(const uint8_t* a, const uint8_t* b, float* d) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ alignas(1024) uint8_t b_tile[kFragmentTokens * 128];
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  // B as 128-byte rows with the 128-byte swizzle: 16-byte chunk c of row r at c ^ (r % 8).
  if (tid < kFragmentTokens * kFragmentInputs / 16) {
    const int r = tid / 2, c = tid % 2;
    *reinterpret_cast<uint4*>(b_tile + r * 128 + 16 * (c ^ (r % 8))) =
        *reinterpret_cast<const uint4*>(b + r * kFragmentInputs + 16 * c);
  }
  fence_proxy_async_shared();
  __syncthreads();
  const auto word = [&](int row, int k0) {
    return *reinterpret_cast<const uint32_t*>(a + row * kFragmentInputs + k0);
  };
  const int row = 16 * warp + g;
  const uint32_t fragment[4] = {word(row, 4 * q), word(row + 8, 4 * q), word(row, 16 + 4 * q),
                                word(row + 8, 16 + 4 * q)};
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  wgmma_fence();
  wgmma_m64n8k32_e4m3_rs(acc, fragment, smem_descriptor(b_tile, 16, 1024), false);
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(acc);
#pragma unroll
  for (int e = 0; e < 4; ++e) d[(row + 8 * (e >> 1)) * kFragmentTokens + 2 * q + (e & 1)] = acc[e];
#else
  (void)a, (void)b, (void)d;
  __trap();
#endif
}

}  // namespace

void multiply_m64n8k32_e4m3(const uint8_t* a, const uint8_t* b, float* d) {
  launch_dependent(m64n8k32_e4m3_kernel, 1, 128, 0, nullptr, a, b, d);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace dsv4::cuda
