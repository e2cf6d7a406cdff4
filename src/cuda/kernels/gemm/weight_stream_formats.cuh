// The weight-streaming GEMM's parameters and its operand formats (internal to the gemm domain;
// the kernel is weight_stream.cuh): how 16 bytes of a weight row become kElems floats with
// their scales (FP8, FP4, NVFP4, bf16, f32), and how a token's activations are read (FP8 codes
// with a scale per 128 inputs, or fp32). NVFP4's 16-input scale blocks give two scales per
// 16-byte chunk (kScaleBlocks = 2); its global scale multiplies the finished sums (row_scales).
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda::gemm_detail {

struct StreamParams {
  const uint8_t* w = nullptr;      // weight rows, w_row_bytes each (16-byte aligned)
  const void* w_scales = nullptr;  // FP8: [ceil(rows/128), scale_cols]; FP4: [rows, cols/32];
                                   // NVFP4: [rows, cols/16]
  ScaleStorage w_scale_storage = ScaleStorage::kF32;  // float, ue8m0 or e4m3 bytes
  const float* w_row_scales = nullptr;                // NVFP4: [rows], times each finished output
  int64_t rows = 0, cols = 0;
  int64_t w_row_bytes = 0;
  int64_t w_scale_cols = 0;
  const void* x = nullptr;          // float values or e4m3 codes, [m, x_row_stride]
  const float* x_scales = nullptr;  // e4m3 codes only: [m, x_row_stride / 128]
  int64_t x_row_stride = 0;         // elements between consecutive tokens
  int64_t rows_per_group = 0;       // rows r read x columns [g·cols, (g+1)·cols), g = r / this
  int64_t m = 0;
  float* y_f32 = nullptr;      // [m, rows], optional
  uint16_t* y_bf16 = nullptr;  // [m, rows], optional
  // Routed experts (expert_stream_kernel): expert e's weight starts expert_w_bytes · e bytes
  // into w (its scales expert_scale_bytes · e into w_scales, its NVFP4 row scales rows · e
  // into w_row_scales) and its tokens are x / y rows [expert_offsets[e], expert_offsets[e + 1]);
  // m is then the most tokens one expert may get.
  const int32_t* expert_offsets = nullptr;
  int64_t expert_w_bytes = 0, expert_scale_bytes = 0;
  const uint8_t* w_row_exponents = nullptr;  // sm_90 MXFP4 experts (PackedLinearsView)
  // The sm_90 decode-size expert kernel only: where x_order is set, grouped row r reads x row
  // x_order[r] / x_order_k (moe_group's order).
  const int32_t* x_order = nullptr;
  int32_t x_order_k = 1;
};

// 16 bytes that are read once: skip L1 so the activations stay there.
__device__ __forceinline__ uint4 load_stream(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float2 half2_bits_to_float2(uint32_t bits) {
  __half2_raw raw;
  raw.x = uint16_t(bits & 0xffffu);
  raw.y = uint16_t(bits >> 16);
  return __half22float2(__half2(raw));
}

// Four e4m3 codes (byte i = element i) -> their exact values.
__device__ __forceinline__ void e4m3x4_to_float(uint32_t v, float* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  const __half2_raw lo_raw =
      __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v & 0xffffu), __NV_E4M3);
  const __half2_raw hi_raw = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v >> 16), __NV_E4M3);
  const float2 lo = __half22float2(__half2(lo_raw));
  const float2 hi = __half22float2(__half2(hi_raw));
  out[0] = lo.x;
  out[1] = lo.y;
  out[2] = hi.x;
  out[3] = hi.y;
#else
  // Portable: e4m3 bits placed in an f16 are value · 2^-8 (subnormals included); × 2^8 is
  // exact in f16. Code 0x7f (NaN) decodes as 480; the quantizers never produce it.
  const __half2 k256 = __floats2half2_rn(256.0f, 256.0f);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint32_t s = v >> (8 * i);  // bytes i and i + 2 in the two halves
    const uint32_t h = ((s & 0x007f007fu) << 7) | ((s & 0x00800080u) << 8);
    __half2_raw raw;
    raw.x = uint16_t(h & 0xffffu);
    raw.y = uint16_t(h >> 16);
    const float2 f = __half22float2(__hmul2(__half2(raw), k256));
    out[i] = f.x;
    out[i + 2] = f.y;
  }
#endif
}

// Eight e2m1 codes (nibble i = element i) -> their values times 2^-14, exactly: the three
// magnitude bits placed at f16 bits 9..11 read as value · 2^-14, the subnormal 0.5 included.
inline constexpr float kE2m1Unfold = 16384.0f;  // 2^14, folded into the weight scale
__device__ __forceinline__ void e2m1x8_to_float_folded(uint32_t v, float* out) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t s = v >> (4 * i);  // nibbles i and i + 4 at the bottom of each half
    const float2 f = half2_bits_to_float2(((s & 0x00070007u) << 9) | ((s & 0x00080008u) << 12));
    out[i] = f.x;
    out[i + 4] = f.y;
  }
}

__device__ __forceinline__ float load_scale(const void* scales, ScaleStorage storage,
                                            int64_t index) {
  const auto* bytes = static_cast<const uint8_t*>(scales);
  switch (storage) {
    case ScaleStorage::kUe8m0:
      return ue8m0_to_float(__ldg(bytes + index));
    case ScaleStorage::kE4m3:
      return __half2float(__half(__nv_cvt_fp8_to_halfraw(__ldg(bytes + index), __NV_E4M3)));
    default:
      return __ldg(static_cast<const float*>(scales) + index);
  }
}

// ---- weight formats: 16 bytes -> kElems floats, and the scale of the chunk ---------------

struct Fp8Weight {
  static constexpr int kElems = 16;
  static constexpr int kScaleBlocks = 1;  // weight scales per chunk
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) {
    e4m3x4_to_float(raw.x, w);
    e4m3x4_to_float(raw.y, w + 4);
    e4m3x4_to_float(raw.z, w + 8);
    e4m3x4_to_float(raw.w, w + 12);
  }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, (row >> 7) * p.w_scale_cols + (k0 >> 7));
  }
};

struct Fp4Weight {
  static constexpr int kElems = 32;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) {
    e2m1x8_to_float_folded(raw.x, w);
    e2m1x8_to_float_folded(raw.y, w + 8);
    e2m1x8_to_float_folded(raw.z, w + 16);
    e2m1x8_to_float_folded(raw.w, w + 24);
  }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, row * p.w_scale_cols + (k0 >> 5)) *
           kE2m1Unfold;
  }
};

// NVFP4: the same e2m1 codes, an e4m3 scale per 16 inputs (two per chunk), and the global scale
// applied to the finished dot product.
struct NvFp4Weight {
  static constexpr int kElems = 32;
  static constexpr int kScaleBlocks = 2;
  static constexpr bool kScaled = true;
  __device__ static void decode(const uint4& raw, float* w) { Fp4Weight::decode(raw, w); }
  __device__ static float scale(const StreamParams& p, int64_t row, int64_t k0) {
    return load_scale(p.w_scales, p.w_scale_storage, row * p.w_scale_cols + (k0 >> 4)) *
           kE2m1Unfold;
  }
};

struct Bf16Weight {
  static constexpr int kElems = 8;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = false;
  __device__ static void decode(const uint4& raw, float* w) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = __uint_as_float(words[i] << 16);
      w[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
  __device__ static float scale(const StreamParams&, int64_t, int64_t) {
    return 1.0f;
  }
};

struct F32Weight {
  static constexpr int kElems = 4;
  static constexpr int kScaleBlocks = 1;
  static constexpr bool kScaled = false;
  __device__ static void decode(const uint4& raw, float* w) {
    w[0] = __uint_as_float(raw.x);
    w[1] = __uint_as_float(raw.y);
    w[2] = __uint_as_float(raw.z);
    w[3] = __uint_as_float(raw.w);
  }
  __device__ static float scale(const StreamParams&, int64_t, int64_t) { return 1.0f; }
};

// ---- activation formats: kElems values of one token at column k --------------------------

// e4m3 codes with one power-of-two scale per 128 columns (the FP8 activation quantizer).
struct Fp8Activations {
  static constexpr bool kScaled = true;
  template <int kElems>
  __device__ static void load(const StreamParams& p, int64_t offset, float* a) {
    const uint8_t* src = static_cast<const uint8_t*>(p.x) + offset;
#pragma unroll
    for (int i = 0; i < kElems / 16; ++i) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(src) + i);
      e4m3x4_to_float(v.x, a + 16 * i);
      e4m3x4_to_float(v.y, a + 16 * i + 4);
      e4m3x4_to_float(v.z, a + 16 * i + 8);
      e4m3x4_to_float(v.w, a + 16 * i + 12);
    }
  }
  __device__ static float scale(const StreamParams& p, int64_t offset) {
    return __ldg(p.x_scales + (offset >> 7));
  }
};

// Plain fp32 activations.
struct F32Activations {
  static constexpr bool kScaled = false;
  template <int kElems>
  __device__ static void load(const StreamParams& p, int64_t offset, float* a) {
    const float4* src = reinterpret_cast<const float4*>(static_cast<const float*>(p.x) + offset);
#pragma unroll
    for (int i = 0; i < kElems / 4; ++i) {
      const float4 v = __ldg(src + i);
      a[4 * i] = v.x;
      a[4 * i + 1] = v.y;
      a[4 * i + 2] = v.z;
      a[4 * i + 3] = v.w;
    }
  }
  __device__ static float scale(const StreamParams&, int64_t) {
    return 1.0f;
  }
};

}  // namespace dsv4::cuda::gemm_detail
