// Launchers for the device numerics of src/cuda/kernels/common/numerics.cuh, so that a C++
// test can compare them with their host twins in src/core.
#pragma once

#include <cstdint>

namespace dsv4::cuda::test {

// For each of n floats (device arrays): bits[i] = float_to_bf16_bits(in[i]) through
// store_bf16<N> (N = 1, 2, 4 or 8; n a multiple of N), and back[i] = load_bf16<N> of those
// bits; rounded[i] = round_bf16(in[i]).
void device_bf16(const float* in, int64_t n, int vector_width, uint16_t* bits, float* back,
                 float* rounded);

// out[i] = exp_rn(in[i]) and sig[i] = sigmoid_rn(in[i]).
void device_exp_sigmoid(const float* in, int64_t n, float* out, float* sig);

}  // namespace dsv4::cuda::test
