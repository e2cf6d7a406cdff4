#include "gemm/numerics_kernels.h"

#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/gemm/weight_stream.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"

namespace dsv4::cuda::test {
namespace {

template <typename In, typename Out, typename F>
__global__ void map_kernel(const In* in, Out* out, size_t n, F f) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = f(in[i]);
}

template <typename Out, typename In, typename F>
std::vector<Out> map(const std::vector<In>& in, F f) {
  const DeviceBuffer<In> d_in(in);
  DeviceBuffer<Out> d_out(in.size());
  map_kernel<<<unsigned((in.size() + 255) / 256), 256>>>(d_in.data(), d_out.data(), in.size(), f);
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return d_out.download();
}

struct E4m3ToFloat {
  __device__ float operator()(uint8_t c) const { return e4m3_to_float(c); }
};
struct FloatToE4m3 {
  __device__ uint8_t operator()(float v) const { return float_to_e4m3(v); }
};
struct Ue8m0ToFloat {
  __device__ float operator()(uint8_t c) const { return ue8m0_to_float(c); }
};
struct E2m1ToFloat {
  __device__ float operator()(uint8_t c) const { return e2m1_to_float(c); }
};
struct Fp8Scale {
  __device__ float operator()(float a) const { return fp8_block_scale(a); }
};
struct Fp4Scale {
  __device__ float operator()(float a) const { return fp4_block_scale(a); }
};

__global__ void decode_kernel(const uint32_t* words, float* out, size_t n, bool fp4) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (fp4) {
    float v[8];
    gemm_detail::e2m1x8_to_float_folded(words[i], v);
    for (int j = 0; j < 8; ++j) out[8 * i + j] = v[j] * gemm_detail::kE2m1Unfold;
  } else {
    float v[4];
    gemm_detail::e4m3x4_to_float(words[i], v);
    for (int j = 0; j < 4; ++j) out[4 * i + j] = v[j];
  }
}

std::vector<float> decode(const std::vector<uint32_t>& words, bool fp4) {
  const DeviceBuffer<uint32_t> d_in(words);
  DeviceBuffer<float> d_out(words.size() * (fp4 ? 8 : 4));
  decode_kernel<<<unsigned((words.size() + 255) / 256), 256>>>(d_in.data(), d_out.data(),
                                                               words.size(), fp4);
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return d_out.download();
}

}  // namespace

std::vector<float> device_e4m3_to_float(const std::vector<uint8_t>& c) {
  return map<float>(c, E4m3ToFloat{});
}
std::vector<uint8_t> device_float_to_e4m3(const std::vector<float>& v) {
  return map<uint8_t>(v, FloatToE4m3{});
}
std::vector<float> device_ue8m0_to_float(const std::vector<uint8_t>& c) {
  return map<float>(c, Ue8m0ToFloat{});
}
std::vector<float> device_e2m1_to_float(const std::vector<uint8_t>& c) {
  return map<float>(c, E2m1ToFloat{});
}
std::vector<float> device_fp8_block_scale(const std::vector<float>& a) {
  return map<float>(a, Fp8Scale{});
}
std::vector<float> device_fp4_block_scale(const std::vector<float>& a) {
  return map<float>(a, Fp4Scale{});
}
std::vector<float> device_e4m3x4_decode(const std::vector<uint32_t>& w) {
  return decode(w, false);
}
std::vector<float> device_e2m1x8_decode(const std::vector<uint32_t>& w) {
  return decode(w, true);
}

}  // namespace dsv4::cuda::test
