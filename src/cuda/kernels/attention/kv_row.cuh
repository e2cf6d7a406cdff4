// Device twins of core/kv_row.h: reading and writing the exact stored forms of attention state.
//   KV row:    [nope e4m3 | rope bf16 | one ue8m0 scale per 64 nope values | zero padding]
//   Index key: [dim/2 bytes of packed e2m1 (low nibble = even element) | one ue8m0 per 32]
// The encoders are warp-cooperative and bit-identical to KvRowFormat::encode and
// IndexKeyFormat::encode; the decoders give bf16 values, which hold every stored value
// exactly (e4m3 · 2^k and e2m1 · 2^k have at most 4 significant bits).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/kernels/common/numerics.cuh"

namespace dsv4::cuda {

__device__ __forceinline__ uint32_t bf16x2_bits(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// Eight bf16 values times the bf16 pair `factor_bits` (one value in both halves), rounded once.
__device__ __forceinline__ uint4 scale_bf16x8(uint4 v, uint32_t factor_bits) {
  const __nv_bfloat162 factor = *reinterpret_cast<const __nv_bfloat162*>(&factor_bits);
  uint32_t out[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 scaled =
        __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&out[i]), factor);
    out[i] = *reinterpret_cast<const uint32_t*>(&scaled);
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

// Eight e4m3 codes (little-endian in a uint2) times the ue8m0 scale 2^(scale_code - 127), as
// eight bf16 (exact), for scale codes up to 134 (scales up to 2^7). No conversions: an e4m3
// byte's exponent and mantissa bits placed 4 bits up, with the sign at bit 15, read as a bf16
// of value v · 2^-120 (an e4m3 subnormal m · 2^-9 lands on the bf16 subnormal m · 2^-129), and
// one bf16 multiply by 2^(120 + k) gives v · 2^k. About two instructions per value, which
// keeps dequantization off the kernels' critical path.
__device__ __forceinline__ uint4 dequant_e4m3x8_moderate_scale(uint2 codes, uint8_t scale_code) {
  const uint32_t exponent = uint32_t(scale_code) + 120u;  // 2^(120 + k), within bf16's range
  const uint32_t scale_bits = (exponent << 7) | (exponent << 23);
  const __nv_bfloat162 scale = *reinterpret_cast<const __nv_bfloat162*>(&scale_bits);
  const uint32_t words[2] = {codes.x, codes.y};
  uint32_t out[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // Bytes 2i and 2i + 1 of the pair of words, each in the high byte of a 16-bit lane.
    const uint32_t spread = __byte_perm(words[i / 2], 0u, (i % 2) ? 0x3424u : 0x1404u);
    const uint32_t bits = (spread & 0x80008000u) | ((spread >> 4) & 0x07f007f0u);
    const __nv_bfloat162 v = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&bits), scale);
    out[i] = *reinterpret_cast<const uint32_t*>(&v);
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

// Any scale: larger ones as v · 2^7 (code 134) times a second exact power of two 2^(k - 7).
__device__ __forceinline__ uint4 dequant_e4m3x8(uint2 codes, uint8_t scale_code) {
  if (scale_code <= 134) return dequant_e4m3x8_moderate_scale(codes, scale_code);
  return scale_bf16x8(dequant_e4m3x8_moderate_scale(codes, 134),
                      ((uint32_t(scale_code) - 7u) << 7) * 0x10001u);
}

// Eight packed e2m1 codes (four bytes, the low nibble first) times the ue8m0 scale
// 2^(scale_code - 127), as eight bf16 (exact), for scale codes up to 128. As for e4m3, no
// conversions: a code's exponent and mantissa bits placed at bf16 bits 6..8, with its sign at
// bit 15, read as a bf16 of value v · 2^-126 (code 1, 0.5, lands on the subnormal 2^-127), and
// one bf16 multiply by 2^(126 + k). Three instructions a value.
__device__ __forceinline__ uint4 dequant_e2m1x8_moderate_scale(uint32_t packed,
                                                               uint8_t scale_code) {
  const uint32_t scale_bits = (uint32_t(scale_code) + 126u) * 0x00800080u;  // in both halves
  const __nv_bfloat162 scale = *reinterpret_cast<const __nv_bfloat162*>(&scale_bits);
  uint32_t out[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t byte = __byte_perm(packed, 0u, 0x4440u + uint32_t(i));
    // Multiplying by a sum of two powers of two places the two nibbles' bits at once: magnitude
    // bits 0..2 -> 6..8 and 4..6 -> 22..24, sign bits 3 -> 15 and 7 -> 31.
    const uint32_t bits =
        ((byte * 0x00040040u) & 0x01c001c0u) | ((byte * 0x01001000u) & 0x80008000u);
    const __nv_bfloat162 v = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&bits), scale);
    out[i] = *reinterpret_cast<const uint32_t*>(&v);
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

// Any scale: larger ones as v · 2 (code 128) times a second exact power of two 2^(k - 1).
__device__ __forceinline__ uint4 dequant_e2m1x8(uint32_t packed, uint8_t scale_code) {
  if (scale_code <= 128) return dequant_e2m1x8_moderate_scale(packed, scale_code);
  return scale_bf16x8(
      dequant_e2m1x8_moderate_scale(packed, 128),
      scale_code == 0xffu ? 0x7fc07fc0u : (uint32_t(scale_code) - 1u) * 0x00800080u);
}

// One KV row (nope e4m3 with a ue8m0 scale per 64 values, then rope bf16) as nope + rope bf16
// values (exact), by one warp: lane l writes dims 16l .. 16l + 15 of every 512. nope must be a
// multiple of 64 and rope of 16.
__device__ __forceinline__ void dequantize_kv_row_warp(const uint8_t* row, int nope, int rope,
                                                       uint16_t* out, int lane) {
  for (int dim = 16 * lane; dim < nope + rope; dim += 512) {
    uint4 v[2];
    if (dim < nope) {
      const uint8_t scale = row[nope + 2 * rope + dim / 64];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        v[h] = dequant_e4m3x8(*reinterpret_cast<const uint2*>(row + dim + 8 * h), scale);
      }
    } else {
      const auto* bits = reinterpret_cast<const uint2*>(row + nope + 2 * (dim - nope));
      v[0] = make_uint4(bits[0].x, bits[0].y, bits[1].x, bits[1].y);
      v[1] = make_uint4(bits[2].x, bits[2].y, bits[3].x, bits[3].y);
    }
    reinterpret_cast<uint4*>(out + dim)[0] = v[0];
    reinterpret_cast<uint4*>(out + dim)[1] = v[1];
  }
}

// Encodes one KV row whose values are get(0 .. nope + rope) (the rope values must already be
// bf16 values) into dst (and dst2 when not null). All 32 lanes of the warp must call it.
template <class Get>
__device__ __forceinline__ void encode_kv_row_warp(const Get& get, int nope, int rope,
                                                   int row_bytes, uint8_t* dst, uint8_t* dst2,
                                                   int lane) {
  const int blocks = nope / 64;
  const int sub = lane % 8;
  for (int base = 0; base < blocks; base += 4) {
    const int b = base + lane / 8;
    const bool active = b < blocks;
    float v[8];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      v[j] = active ? get(b * 64 + sub * 8 + j) : 0.0f;
      amax = fmaxf(amax, fabsf(v[j]));
    }
#pragma unroll
    for (int offset = 1; offset < 8; offset <<= 1) {
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
    }
    const float scale = fp8_block_scale(amax);
    if (active) {
      uint32_t words[2] = {0u, 0u};
#pragma unroll
      for (int j = 0; j < 8; ++j)
        words[j / 4] |= uint32_t(quantize_e4m3(v[j], scale)) << (8 * (j % 4));
      const uint2 codes = make_uint2(words[0], words[1]);
      *reinterpret_cast<uint2*>(dst + b * 64 + sub * 8) = codes;
      if (dst2) *reinterpret_cast<uint2*>(dst2 + b * 64 + sub * 8) = codes;
      if (sub == 0) {
        dst[nope + 2 * rope + b] = power_of_two_to_ue8m0(scale);
        if (dst2) dst2[nope + 2 * rope + b] = power_of_two_to_ue8m0(scale);
      }
    }
  }
  for (int i = lane; i < rope; i += 32) {
    const uint16_t bits = float_to_bf16_bits(get(nope + i));
    *reinterpret_cast<uint16_t*>(dst + nope + 2 * i) = bits;
    if (dst2) *reinterpret_cast<uint16_t*>(dst2 + nope + 2 * i) = bits;
  }
  for (int i = nope + 2 * rope + blocks + lane; i < row_bytes; i += 32) {
    dst[i] = 0;
    if (dst2) dst2[i] = 0;
  }
}

// Encodes one index key of `dim` values get(0 .. dim) (dim a multiple of 32) into dst.
template <class Get>
__device__ __forceinline__ void encode_index_key_warp(const Get& get, int dim, uint8_t* dst,
                                                      int lane) {
  for (int b = 0; b < dim / 32; ++b) {
    const float v = get(b * 32 + lane);
    float amax = fabsf(v);
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
    }
    const float scale = fp4_block_scale(amax);
    const uint32_t code = quantize_e2m1(v, scale);
    const uint32_t high = __shfl_down_sync(0xffffffffu, code, 1);
    if (lane % 2 == 0) dst[(b * 32 + lane) / 2] = uint8_t(code | (high << 4));
    if (lane == 0) dst[dim / 2 + b] = power_of_two_to_ue8m0(scale);
  }
}

}  // namespace dsv4::cuda
