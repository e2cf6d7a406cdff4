// Element-wise device evaluations of cuda/kernels/common/numerics.cuh for the tests (host
// pointers in and out; synchronous).
#pragma once

#include <cstdint>
#include <vector>

namespace dsv4::cuda::test {

std::vector<float> device_e4m3_to_float(const std::vector<uint8_t>& codes);
std::vector<uint8_t> device_float_to_e4m3(const std::vector<float>& values);
std::vector<float> device_ue8m0_to_float(const std::vector<uint8_t>& codes);
std::vector<float> device_e2m1_to_float(const std::vector<uint8_t>& codes);
std::vector<float> device_fp8_block_scale(const std::vector<float>& amax);
std::vector<float> device_fp4_block_scale(const std::vector<float>& amax);
// The gemm kernels' packed decoders: 4 e4m3 codes per word, 8 e2m1 codes per word (the
// latter returned times 2^14, i.e. the true values).
std::vector<float> device_e4m3x4_decode(const std::vector<uint32_t>& words);
std::vector<float> device_e2m1x8_decode(const std::vector<uint32_t>& words);

}  // namespace dsv4::cuda::test
