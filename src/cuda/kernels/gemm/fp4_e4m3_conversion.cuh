// MXFP4 weight codes in the fragment order (fp4_fragment_order.cuh) → the e4m3 codes of the FP8
// warpgroup MMAs' A operand (fp4_expert_wgmma.cu, fp4_expert_stream_wgmma.cu). Two encodings,
// both through a byte table of the eight e2m1 magnitudes:
//   - unscaled: the e4m3 code of value · 2^-6, whatever the block's scale (exact always);
//   - scale-folded: the e4m3 code of value · 2^s, where s = (block exponent) − (the row's
//     largest block exponent) + 6 folds the weight scale into the code, so that one MMA chain
//     covers 128 inputs; exact for s in [−5, 6] (every nonzero e2m1 value times 2^s is then
//     an e4m3 normal, and 6 · 2^6 ≤ 448).
#pragma once

#include <cstdint>

namespace dsv4::cuda::gemm_detail {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// The magnitude table of the unscaled encoding (x: magnitudes 0-3, y: 4-7): value · 2^-6 is
// the e2m1 magnitude bits moved onto e4m3 bits 2..4 (0.5 · 2^-6 is the e4m3 subnormal 0x04).
constexpr uint32_t kUnscaledLow = 0x0c080400u, kUnscaledHigh = 0x1c181410u;
// What sums over unscaled codes are multiplied by to undo the 2^-6.
constexpr float kE2m1AsE4m3Unfold = 64.0f;

// The scale-folded tables of one row (e4m3 codes of the magnitudes times 2^s): for s in
// [−5, 6] every entry but 0 is a normal, so the table is the one for s = 0
// (0x4c484440'3c383000) with s added to each exponent field — one multiply-add per half from
// the block's ue8m0 code.
struct FoldedRowTables {
  uint32_t low_bias, high_bias;
  __device__ explicit FoldedRowTables(uint32_t high)
      : low_bias(0x3c383000u - (high - 6u) * 0x08080800u),
        high_bias(0x4c484440u - (high - 6u) * 0x08080808u) {}
  // Block j's table from the row's four scale codes of a stage (byte j = block j).
  __device__ uint2 operator()(uint32_t codes, int j) const {
    const uint32_t code = (codes >> (8 * j)) & 0xffu;
    return make_uint2(low_bias + code * 0x08080800u, high_bias + code * 0x08080808u);
  }
};

// PRMT as inline PTX: the selector is used as given (the intrinsic's lowering masks it with
// 0x7777 before every permute, a wasted instruction each).
__device__ __forceinline__ uint32_t byte_permute(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}

// A fragment word of eight codes → their eight e4m3 codes (x: the word's first four codes, y: its
// last four), 7 instructions: a byte permute of the table by the magnitudes per four codes (bits
// 0-2 of nibbles 0-3, then 4-7), and each half's signs, which the fragment order keeps where they
// land: the first four codes' at bits 7, 15, 23, 31, the last four's at bits 3, 11, 19, 27.
__device__ __forceinline__ uint2 e2m1x8_to_e4m3(uint32_t codes, uint2 table) {
  const uint32_t magnitude = codes & 0x77777777u;
  const uint32_t low = byte_permute(table.x, table.y, magnitude);
  const uint32_t high = byte_permute(table.x, table.y, magnitude >> 16);
  return make_uint2(low | (codes & 0x80808080u), high | ((codes << 4) & 0x80808080u));
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail
