// Device probes of the numeric primitives the attention kernels use (numerics.cuh, kv_row.cuh),
// for the host-comparison tests. Device pointers; synchronous.
#pragma once

#include <cstdint>

namespace dsv4::cuda::test {

// out[i] = bf16 bits of e4m3(codes[i]) · scale via dequant_e4m3x8 (n a multiple of 8).
void probe_dequant_e4m3(const uint8_t* codes, int n, float scale, uint16_t* out);
// out[i] = bf16 bits of the i-th e2m1 value of packed (two per byte) · 2^(scale_code - 127)
// (n_bytes % 4 == 0).
void probe_dequant_e2m1(const uint8_t* packed, int n_bytes, uint8_t scale_code, uint16_t* out);
void probe_float_to_e2m1(const float* x, int n, uint8_t* out);
void probe_quantize_e2m1(const float* x, const float* scales, int n, uint8_t* out);
void probe_power_of_two_to_ue8m0(const float* x, int n, uint8_t* out);
// out[i] = divide_rn(x[i], d[i], __frcp_rn(d[i])).
void probe_divide_rn(const float* x, const float* d, int n, float* out);

}  // namespace dsv4::cuda::test
