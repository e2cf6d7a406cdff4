// Device equivalents of the shared numeric primitives in src/core (formats.h, quantize.h):
// one header-only implementation for every kernel domain. Each function matches its host
// twin bit for bit (the tests compare them); add new primitives here, not in a domain.
#pragma once

#include <cstdint>

namespace dsv4::cuda {

// ---- bf16 (core/formats.h) -------------------------------------------------------------
// bf16 values travel as raw uint16_t bits so that kernels and host code agree on one type.

__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) {
  return __uint_as_float(uint32_t(bits) << 16);
}

// Round to nearest, ties to even; NaN becomes a quiet NaN (as float_to_bf16).
__device__ __forceinline__ uint16_t float_to_bf16_bits(float value) {
  uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// The nearest bf16 value, as a float (round_bf16).
__device__ __forceinline__ float round_bf16(float value) {
  return bf16_bits_to_float(float_to_bf16_bits(value));
}

// Two values rounded to bf16 in one word, `low` in the lower half (the first in memory).
__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
  return uint32_t(float_to_bf16_bits(low)) | (uint32_t(float_to_bf16_bits(high)) << 16);
}

// Eight bf16 values in one 16-byte vector (uint4) <-> eight floats.
__device__ __forceinline__ void unpack_bf16x8(const uint4& v, float (&out)[8]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ uint4 pack_bf16x8(const float (&in)[8]) {
  uint32_t words[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) words[i] = pack_bf16x2(in[2 * i], in[2 * i + 1]);
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// N consecutive bf16 values (N = 1, 2, 4 or 8; the address aligned to 2·N bytes) <-> floats.
template <int N>
__device__ __forceinline__ void load_bf16(const uint16_t* p, float (&out)[N]) {
  static_assert(N == 1 || N == 2 || N == 4 || N == 8, "1, 2, 4 or 8 values");
  if constexpr (N == 8) {
    unpack_bf16x8(*reinterpret_cast<const uint4*>(p), out);
  } else if constexpr (N == 4) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    out[0] = __uint_as_float(v.x << 16);
    out[1] = __uint_as_float(v.x & 0xffff0000u);
    out[2] = __uint_as_float(v.y << 16);
    out[3] = __uint_as_float(v.y & 0xffff0000u);
  } else if constexpr (N == 2) {
    const uint32_t v = *reinterpret_cast<const uint32_t*>(p);
    out[0] = __uint_as_float(v << 16);
    out[1] = __uint_as_float(v & 0xffff0000u);
  } else {
    out[0] = bf16_bits_to_float(*p);
  }
}

// Rounds each value to bf16 and stores them.
template <int N>
__device__ __forceinline__ void store_bf16(uint16_t* p, const float (&in)[N]) {
  static_assert(N == 1 || N == 2 || N == 4 || N == 8, "1, 2, 4 or 8 values");
  if constexpr (N == 8) {
    *reinterpret_cast<uint4*>(p) = pack_bf16x8(in);
  } else if constexpr (N == 1) {
    *p = float_to_bf16_bits(in[0]);
  } else {
    uint32_t words[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) words[i] = pack_bf16x2(in[2 * i], in[2 * i + 1]);
    if constexpr (N == 4) {
      *reinterpret_cast<uint2*>(p) = make_uint2(words[0], words[1]);
    } else {
      *reinterpret_cast<uint32_t*>(p) = words[0];
    }
  }
}

// ---- e4m3, ue8m0, e2m1 (core/formats.h) ------------------------------------------------

__device__ __forceinline__ float e4m3_to_float(uint8_t code) {
  const uint32_t sign = uint32_t(code & 0x80u) << 24;
  const uint32_t exponent = (code >> 3) & 0xfu, mantissa = code & 7u;
  if (exponent == 0xfu && mantissa == 7u) return __uint_as_float(sign | 0x7fc00000u);  // NaN
  const float magnitude = exponent == 0
                              ? float(mantissa) * 0x1p-9f  // subnormal: m * 2^-9
                              : __uint_as_float(((exponent + 120u) << 23) | (mantissa << 20));
  return __uint_as_float(sign | __float_as_uint(magnitude));
}

// Round to nearest, ties to even; |value| > 448 saturates to ±448; NaN -> 0x7f.
__device__ __forceinline__ uint8_t float_to_e4m3(float value) {
  if (isnan(value)) return 0x7f;
  const uint32_t sign = (__float_as_uint(value) >> 24) & 0x80u;
  const float magnitude = fminf(fabsf(value), 448.0f);
  if (magnitude < 0x1p-6f) {
    // Subnormal range: steps of 2^-9 (8 steps is exactly the smallest normal, code 8).
    return uint8_t(sign | uint32_t(rintf(magnitude * 512.0f)));
  }
  uint32_t bits = __float_as_uint(magnitude);
  bits += 0x7ffffu + ((bits >> 20) & 1u);  // round the mantissa to 3 bits (carry is fine)
  const uint32_t exponent = (bits >> 23) - 120u, mantissa = (bits >> 20) & 7u;
  return uint8_t(sign | (exponent << 3) | mantissa);
}

// 2^(code - 127); code 255 is NaN.
__device__ __forceinline__ float ue8m0_to_float(uint8_t code) {
  if (code == 0xffu) return __uint_as_float(0x7fc00000u);
  return code == 0 ? 0x1p-127f : __uint_as_float(uint32_t(code) << 23);
}

// Byte j of four packed ue8m0 codes as ue8m0_to_float decodes it, for codes 1..254 (what
// the weight encoder stores; it keeps 2^-127 as a float scale): a shift and a mask.
__device__ __forceinline__ float ue8m0_byte_to_float(uint32_t codes, int j) {
  return __uint_as_float(j < 3 ? (codes << (23 - 8 * j)) & 0x7f800000u
                               : (codes >> 1) & 0x7f800000u);
}

// Low 4 bits: bit 3 sign, then 2 exponent bits and 1 mantissa bit.
__device__ __forceinline__ float e2m1_to_float(uint8_t code) {
  const uint32_t exponent = (code >> 1) & 3u, mantissa = code & 1u;
  const float magnitude = exponent == 0
                              ? 0.5f * float(mantissa)
                              : __uint_as_float(((exponent + 126u) << 23) | (mantissa << 22));
  return __uint_as_float((uint32_t(code & 8u) << 28) | __float_as_uint(magnitude));
}

// ---- block quantizer scales (core/quantize.h) ------------------------------------------

// Smallest power of two >= x for a positive, finite, normal float x (on its bits).
__device__ __forceinline__ float power_of_two_ceil(float x) {
  const uint32_t bits = __float_as_uint(x);
  const uint32_t exponent = (bits >> 23) & 0xffu, mantissa = bits & 0x7fffffu;
  return __uint_as_float((exponent + (mantissa != 0 ? 1u : 0u)) << 23);
}

// amax is max |x| over the block with NaNs ignored (fmaxf), as the host's block_amax.
__device__ __forceinline__ float fp8_block_scale(float amax) {
  return power_of_two_ceil(__fmul_rn(fmaxf(amax, 1e-4f), 1.0f / 448.0f));
}

__device__ __forceinline__ float fp4_block_scale(float amax) {
  return power_of_two_ceil(__fmul_rn(fmaxf(amax, 6.0f * 0x1p-126f), 1.0f / 6.0f));
}

// e4m3 code of clamp(x / scale, ±448) (the FP8 quantizers' element rule; NaN stays NaN).
__device__ __forceinline__ uint8_t quantize_e4m3(float x, float scale) {
  const float v = __fdiv_rn(x, scale);
  return float_to_e4m3(v < -448.0f ? -448.0f : (448.0f < v ? 448.0f : v));
}

// The FP8 activation quantizer (core/quantize.h, blocks of 128) on one warp: lane l holds
// values 4l .. 4l + 3 of the block; returns its four e4m3 codes (value 4l + i in byte i) and
// sets `scale`, the block's scale, in every lane.
__device__ __forceinline__ uint32_t quantize_fp8_block128(const float (&v)[4], float& scale) {
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) amax = fmaxf(amax, fabsf(v[i]));  // NaN is ignored, as on the host
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  scale = fp8_block_scale(amax);
  uint32_t packed = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) packed |= uint32_t(quantize_e4m3(v[i], scale)) << (8 * i);
  return packed;
}

// x / d correctly rounded (as __fdiv_rn), given r = __frcp_rn(d): x·r then one residual
// correction (Markstein: with r the correctly rounded reciprocal and an FMA residual, the
// corrected quotient is the correctly rounded one), three instructions and no branch, for many
// x over one d. Assumes no underflow or overflow (|x / d| normal or zero, d finite, nonzero).
__device__ __forceinline__ float divide_rn(float x, float d, float r) {
  const float q = __fmul_rn(x, r);
  return __fmaf_rn(__fmaf_rn(-q, d, x), r, q);
}

// ---- libm twins ------------------------------------------------------------------------
// The CPU backend calls glibc's float exp; CUDA's expf may be 2 ulp off. Evaluating in double
// and rounding once gives the correctly rounded result; glibc's expf returns the same float
// on all but ~0.06% of inputs, where it is 1 ulp away (measured on the GPU machine's glibc).
__device__ __forceinline__ float exp_rn(float x) {
  return float(exp(double(x)));
}

// 1 / (1 + exp(-x)) with the CPU backend's operation order and no contraction.
__device__ __forceinline__ float sigmoid_rn(float x) {
  return __fdiv_rn(1.0f, __fadd_rn(1.0f, exp_rn(-x)));
}

// ---- encoders for stored attention state (core/formats.h, core/quantize.h) -------------

// The ue8m0 code of a power-of-two scale (power_of_two_to_ue8m0): its biased exponent.
__device__ __forceinline__ uint8_t power_of_two_to_ue8m0(float scale) {
  return uint8_t(__float_as_uint(scale) >> 23);
}

// Round to nearest on the e2m1 grid {0, .5, 1, 1.5, 2, 3, 4, 6}, ties to the even code;
// |value| > 6 saturates; NaN -> 7 (float_to_e2m1).
__device__ __forceinline__ uint8_t float_to_e2m1(float value) {
  if (isnan(value)) return 7;
  const uint32_t sign = (__float_as_uint(value) >> 28) & 8u;
  const float m = fabsf(value);
  constexpr float kMid[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  uint32_t code = 7;
#pragma unroll
  for (int c = 6; c >= 0; --c) {
    if (m < kMid[c]) code = uint32_t(c);
    if (m == kMid[c]) code = uint32_t(c % 2 == 0 ? c : c + 1);
  }
  return uint8_t(sign | code);
}

// e2m1 code of clamp(x / scale, ±6) (the FP4 quantizer's element rule).
__device__ __forceinline__ uint8_t quantize_e2m1(float x, float scale) {
  const float v = __fdiv_rn(x, scale);
  return float_to_e2m1(v < -6.0f ? -6.0f : (6.0f < v ? 6.0f : v));
}

}  // namespace dsv4::cuda
