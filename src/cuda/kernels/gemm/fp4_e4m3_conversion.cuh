// MXFP4 weight codes → the e4m3 codes of the FP8 warpgroup MMAs' A operand
// (fp4_expert_wgmma.cu). Two encodings, both through a byte table of the eight e2m1 magnitudes:
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

// A 32-bit AND the compiler cannot narrow: byte_perm reads only the low 16 bits of its
// selector, and left to itself the compiler masks the two halves of a word separately.
template <uint32_t kMask>
__device__ __forceinline__ uint32_t and_whole_word(uint32_t a) {
  uint32_t r;
  asm("and.b32 %0, %1, %2;" : "=r"(r) : "r"(a), "n"(kMask));
  return r;
}

// Eight e2m1 codes (a 32-bit word of packed codes, k order from the low nibble) → their eight
// e4m3 codes in k order (x: k 0-3, y: k 4-7): one byte permute for the magnitudes and one for
// the signs (nibble bit 3 → selector 4, a byte of 0x80) per four codes; the masks are shared by
// both halves (11 instructions per word).
__device__ __forceinline__ uint2 e2m1x8_to_e4m3(uint32_t codes, uint2 table) {
  const uint32_t magnitude = and_whole_word<0x77777777u>(codes);
  const uint32_t sign = and_whole_word<0x44444444u>(codes >> 1);
  return make_uint2(
      __byte_perm(table.x, table.y, magnitude) | __byte_perm(0u, 0x80808080u, sign),
      __byte_perm(table.x, table.y, magnitude >> 16) | __byte_perm(0u, 0x80808080u, sign >> 16));
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail
