// A-operand fragments of the MXFP4 expert GEMM's FP8 warpgroup MMAs (fp4_expert_wgmma.cu): the
// weight rows' e2m1 codes, read from the shared-memory stage, become the e4m3 codes that
// `wgmma m64nNk32 .e4m3` takes from registers. Two encodings:
//   - unscaled: the e4m3 code of value · 2^-6, whatever the block's scale (exact always);
//   - scale-folded: the e4m3 code of value · 2^s, where s = (block exponent) − (the row's
//     largest block exponent) + 6 folds the weight scale into the code, so that one MMA chain
//     covers 128 inputs; exact for s in [−5, 6] (every nonzero e2m1 value times 2^s is then
//     an e4m3 normal, and 6 · 2^6 ≤ 448).
// Fragment layout (m64k32, 8-bit, as mma.m16n8k32): lane (g, q) of warp w holds row 16w + g in
// registers 0 and 2, row 16w + g + 8 in 1 and 3; k 4q..4q+3 in registers 0 and 1, 16 + 4q..+3
// in 2 and 3; byte i of a register = k + i.
#pragma once

#include <cstdint>

#include "cuda/kernels/common/numerics.cuh"

namespace dsv4::cuda::gemm_detail {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Byte offset of row r's 16-byte block b among a stage's weight codes (64 bytes a row, 128
// inputs): the XOR spreads the eight rows a warp reads at once over the banks.
__device__ __forceinline__ int weight_chunk(int row, int block) {
  return row * 64 + 16 * (block ^ ((row >> 1) & 3));
}

// Lane q's eight codes of one row and 32-input block (byte b = codes 2b, 2b + 1): k 4q..4q+3 in
// the low 16 bits, 16 + 4q..+3 in the high 16 bits, one code per nibble in k order.
__device__ __forceinline__ uint32_t lane_nibbles(const uint4& block, int q) {
  const uint32_t low = (q >> 1) ? block.y : block.x, high = (q >> 1) ? block.w : block.z;
  return __byte_perm(low, high, (q & 1) ? 0x7632 : 0x5410);
}

// Four e2m1 codes (the low 16 bits of `nibbles`, k order) → four e4m3 codes of value · 2^-6,
// byte i = code i: one code per byte, then the three magnitude bits onto e4m3 bits 2..4
// (exponent and mantissa of both formats line up; e2m1's subnormal 0.5 included).
__device__ __forceinline__ uint32_t e2m1x4_to_e4m3(uint32_t nibbles) {
  const uint32_t t = __byte_perm(nibbles, 0u, 0x4140);  // bytes n1n0, 0, n3n2, 0
  const uint32_t spread = (t | (t << 4)) & 0x0f0f0f0fu;
  return ((spread & 0x07070707u) << 2) | ((spread & 0x08080808u) << 4);
}

// The e4m3 codes of the eight e2m1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6} times 2^s as a byte
// table (x: magnitudes 0-3, y: 4-7), for one row's blocks: s = code − high + 6 with `high` the
// row's largest scale exponent code. For s in [−5, 6] every entry but 0 is an e4m3 normal, so
// the table is the one for s = 0 (0x4c484440'3c383000) with s added to each exponent field: one
// multiply-add per half from the block's code.
struct FoldedRowTables {
  uint32_t low_bias, high_bias;
  __device__ explicit FoldedRowTables(uint32_t high)
      : low_bias(0x3c383000u - (high - 6u) * 0x08080800u),
        high_bias(0x4c484440u - (high - 6u) * 0x08080808u) {}
  // Block j's table from the stage's four scale codes of the row (byte j = block j).
  __device__ uint2 operator()(uint32_t codes, int j) const {
    const uint32_t code = (codes >> (8 * j)) & 0xffu;
    return make_uint2(low_bias + code * 0x08080800u, high_bias + code * 0x08080808u);
  }
};

// Four e2m1 codes (the low 16 bits of `nibbles`) → their e4m3 codes through a magnitude table:
// one byte permute for the magnitudes, one for the signs (nibble bit 3 → byte bit 7).
__device__ __forceinline__ uint32_t e2m1x4_to_e4m3(uint32_t nibbles, uint2 table) {
  const uint32_t magnitudes = __byte_perm(table.x, table.y, nibbles & 0x7777u);
  const uint32_t signs = __byte_perm(0u, 0x80808080u, (nibbles >> 1) & 0x4444u);
  return magnitudes | signs;
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail
