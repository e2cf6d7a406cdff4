#include "attention/numerics_probe.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda::test {
namespace {

__global__ void dequant_e4m3_kernel(const uint8_t* codes, int n, float scale, uint16_t* out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  const uint4 v =
      dequant_e4m3x8(*reinterpret_cast<const uint2*>(codes + i), power_of_two_to_ue8m0(scale));
  *reinterpret_cast<uint4*>(out + i) = v;
}

__global__ void dequant_e2m1_kernel(const uint8_t* packed, int n_bytes, uint8_t scale_code,
                                    uint16_t* out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (i >= n_bytes) return;
  const uint4 v = dequant_e2m1x8(*reinterpret_cast<const uint32_t*>(packed + i), scale_code);
  *reinterpret_cast<uint4*>(out + 2 * i) = v;
}

__global__ void e2m1_kernel(const float* x, const float* scales, int n, uint8_t* out, int mode) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  if (mode == 0) out[i] = float_to_e2m1(x[i]);
  if (mode == 1) out[i] = quantize_e2m1(x[i], scales[i]);
  if (mode == 2) out[i] = power_of_two_to_ue8m0(x[i]);
}

__global__ void divide_kernel(const float* x, const float* d, int n, float* out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = divide_rn(x[i], d[i], __frcp_rn(d[i]));
}

unsigned blocks(int n) {
  return unsigned((n + 255) / 256);
}

}  // namespace

void probe_dequant_e4m3(const uint8_t* codes, int n, float scale, uint16_t* out) {
  dequant_e4m3_kernel<<<blocks(n / 8), 256>>>(codes, n, scale, out);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void probe_dequant_e2m1(const uint8_t* packed, int n_bytes, uint8_t scale_code, uint16_t* out) {
  dequant_e2m1_kernel<<<blocks(n_bytes / 4), 256>>>(packed, n_bytes, scale_code, out);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void probe_float_to_e2m1(const float* x, int n, uint8_t* out) {
  e2m1_kernel<<<blocks(n), 256>>>(x, nullptr, n, out, 0);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void probe_quantize_e2m1(const float* x, const float* scales, int n, uint8_t* out) {
  e2m1_kernel<<<blocks(n), 256>>>(x, scales, n, out, 1);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void probe_power_of_two_to_ue8m0(const float* x, int n, uint8_t* out) {
  e2m1_kernel<<<blocks(n), 256>>>(x, nullptr, n, out, 2);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void probe_divide_rn(const float* x, const float* d, int n, float* out) {
  divide_kernel<<<blocks(n), 256>>>(x, d, n, out);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace dsv4::cuda::test
