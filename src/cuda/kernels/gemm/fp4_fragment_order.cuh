// How the FP4 kernels that hand the weights to wgmma as its register operand
// (fp4_expert_stream_wgmma.cu, fp4_expert_wgmma.cu; internal to the gemm domain) keep a stage's
// FP4 codes in shared memory, and what ldmatrix gives each lane of them.
//
// The codes are in the fragment order (Fp4Order::kMmaFragments, linear.h): 4-byte word q of a
// 32-code block holds codes k 4q .. 4q + 3 and 16 + 4q .. +3, magnitudes in bits 0-2 of nibbles
// 0-7 and signs at bits 7, 15, 23, 31 (the first four) and 3, 11, 19, 27 (the last four).
// ldmatrix gives lane (g, q) word q of its rows' blocks, so its eight e4m3 codes
// (fp4_e4m3_conversion.cuh: x = the first four, y = the last four) are exactly its A fragment
// registers of the block's k32 MMA (x: a[0] / a[1], y: a[2] / a[3]), and the token codes stay in
// their natural order.
#pragma once

namespace dsv4::cuda::gemm_detail::fp4_fragments {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Row r's 16-byte block b (32 codes) among a stage's FP4 codes (64 bytes a row): the XOR puts
// the eight rows one ldmatrix matrix reads into eight different 16-byte bank groups.
__device__ __forceinline__ int weight_block_offset(int row, int block) {
  return row * 64 + 16 * (block ^ ((row >> 1) & 3));
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail::fp4_fragments
