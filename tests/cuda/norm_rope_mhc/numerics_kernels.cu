#include "numerics_kernels.h"

#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda::test {
namespace {

template <int N>
__global__ void bf16_kernel(const float* in, int64_t n, uint16_t* bits, float* back,
                            float* rounded) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * N;
  if (i >= n) return;
  float v[N];
  for (int e = 0; e < N; ++e) {
    v[e] = in[i + e];
    rounded[i + e] = round_bf16(in[i + e]);
  }
  store_bf16<N>(bits + i, v);
  float w[N];
  load_bf16<N>(bits + i, w);
  for (int e = 0; e < N; ++e) back[i + e] = w[e];
}

__global__ void exp_kernel(const float* in, int64_t n, float* out, float* sig) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = exp_rn(in[i]);
  sig[i] = sigmoid_rn(in[i]);
}

}  // namespace

void device_bf16(const float* in, int64_t n, int vector_width, uint16_t* bits, float* back,
                 float* rounded) {
  const auto blocks = unsigned((n / vector_width + 255) / 256);
  switch (vector_width) {
    case 1:
      bf16_kernel<1><<<blocks, 256>>>(in, n, bits, back, rounded);
      break;
    case 2:
      bf16_kernel<2><<<blocks, 256>>>(in, n, bits, back, rounded);
      break;
    case 4:
      bf16_kernel<4><<<blocks, 256>>>(in, n, bits, back, rounded);
      break;
    default:
      bf16_kernel<8><<<blocks, 256>>>(in, n, bits, back, rounded);
      break;
  }
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void device_exp_sigmoid(const float* in, int64_t n, float* out, float* sig) {
  exp_kernel<<<unsigned((n + 255) / 256), 256>>>(in, n, out, sig);
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace dsv4::cuda::test
