// Tensor maps (the descriptors of TMA's bulk tensor copies), encoded on the host through the
// driver entry point the runtime exposes, so nothing links the driver library directly.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace dsv4::cuda {

// A 2-D map over a row-major bf16 matrix [rows][cols] whose boxes are box_rows rows of 64
// columns (128 bytes, in the 128-byte swizzle the sm_90 kernels' operands use); coordinates
// outside the matrix read as zero.
CUtensorMap tensor_map_bf16_swizzle128(const void* base, int64_t rows, int64_t cols,
                                       int32_t box_rows);

}  // namespace dsv4::cuda
