// How the FP4 kernels that hand the weights to wgmma as its register operand
// (fp4_expert_stream_wgmma.cu, fp4_expert_wgmma.cu; internal to the gemm domain) keep a stage's
// FP4 codes in shared memory, and what ldmatrix gives each lane of them.
//
// The codes are in the fragment order (Fp4Order::kMmaTiles, linear.h): 4-byte word q of a
// 32-code block holds codes k 4q .. 4q + 3 and 16 + 4q .. +3, magnitudes in bits 0-2 of nibbles
// 0-7 and signs at bits 7, 15, 23, 31 (the first four) and 3, 11, 19, 27 (the last four).
// ldmatrix gives lane (g, q) word q of its rows' blocks, so its eight e4m3 codes
// (fp4_e4m3_conversion.cuh: x = the first four, y = the last four) are exactly its A fragment
// registers of the block's k32 MMA (x: a[0] / a[1], y: a[2] / a[3]), and the token codes stay in
// their natural order.
//
// The rows are stored by bands of 64 (the decode kernel's CTA rows), and a band stage by stage:
// the 64-byte code pieces (and the scale pieces) of a 128-input stage of all the band's rows are
// one contiguous run, so that a CTA's stage reads one run rather than 64-byte pieces 64 rows
// apart (which left HBM at about half its bandwidth at decode sizes).
#pragma once

#include <cstdint>

namespace dsv4::cuda::gemm_detail::fp4_fragments {

constexpr int64_t kBandRows = 64;
constexpr int64_t kStageInputs = 128;

// Rows in the band that holds `row` (64, or the remainder in the last band).
__host__ __device__ constexpr int64_t band_rows(int64_t rows, int64_t row) {
  const int64_t first = row / kBandRows * kBandRows;
  return rows - first < kBandRows ? rows - first : kBandRows;
}

// Where row `row`'s piece of stage `stage` starts in a weight of `rows` rows and `stages` stages
// with `piece` bytes a row and stage (64 code bytes, or the row's four scales): the band's
// first row's natural place, then the band's earlier stages, then the band's earlier rows.
__host__ __device__ constexpr int64_t band_stage_offset(int64_t rows, int64_t stages, int64_t row,
                                                        int64_t stage, int64_t piece) {
  const int64_t first = row / kBandRows * kBandRows;
  return (first * stages + stage * band_rows(rows, row) + (row - first)) * piece;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Row r's 16-byte block b (32 codes) among a stage's FP4 codes (64 bytes a row): the XOR puts
// the eight rows one ldmatrix matrix reads into eight different 16-byte bank groups.
__device__ __forceinline__ int weight_block_offset(int row, int block) {
  return row * 64 + 16 * (block ^ ((row >> 1) & 3));
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda::gemm_detail::fp4_fragments
