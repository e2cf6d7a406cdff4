#include "cuda/kernels/gemm/fp8_quantize.h"

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ void load4(const float* p, float (&v)[4]) {
  const float4 f = __ldg(reinterpret_cast<const float4*>(p));
  v[0] = f.x;
  v[1] = f.y;
  v[2] = f.z;
  v[3] = f.w;
}

__device__ __forceinline__ void load4(const uint16_t* p, float (&v)[4]) {
  load_bf16<4>(p, v);
}

// One warp per 128-input block: each lane takes 4 consecutive inputs. Memory-bound and tiny
// (m·k·(4+1) bytes); the next step is fusing it into the GEMM's activation staging.
template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    quantize_fp8_kernel(const T* x, int64_t blocks, uint8_t* codes, float* scales) {
  wait_for_previous_kernel();
  const int64_t block = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (block >= blocks) return;
  const int lane = int(threadIdx.x & 31u);
  const int64_t offset = block * 128 + lane * 4;
  float v[4];
  load4(x + offset, v);
  float scale;
  *reinterpret_cast<uint32_t*>(codes + offset) = quantize_fp8_block128(v, scale);
  if (lane == 0) scales[block] = scale;
}

template <typename T>
void launch(const T* x, int64_t m, int64_t k, uint8_t* codes, float* scales, cudaStream_t stream) {
  if (k % 128 != 0) fail("quantize_activations_fp8: {} inputs are not a multiple of 128", k);
  if (reinterpret_cast<uintptr_t>(x) % (4 * sizeof(T)) != 0 ||
      reinterpret_cast<uintptr_t>(codes) % 4 != 0) {
    fail("quantize_activations_fp8: x or codes misaligned");
  }
  const int64_t blocks = m * (k / 128);
  if (blocks == 0) return;
  launch_dependent(quantize_fp8_kernel<T>, unsigned((blocks + kWarps - 1) / kWarps), 32 * kWarps, 0,
                   stream, x, blocks, codes, scales);
}

}  // namespace

void quantize_activations_fp8(const float* x, int64_t m, int64_t k, uint8_t* codes, float* scales,
                              cudaStream_t stream) {
  launch(x, m, k, codes, scales, stream);
}

void quantize_activations_fp8(const uint16_t* x, int64_t m, int64_t k, uint8_t* codes,
                              float* scales, cudaStream_t stream) {
  launch(x, m, k, codes, scales, stream);
}

}  // namespace dsv4::cuda
