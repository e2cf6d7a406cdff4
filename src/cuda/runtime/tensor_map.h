// Tensor maps (the descriptors of TMA's bulk tensor copies), encoded on the host through the
// driver entry point the runtime exposes, so nothing links the driver library directly.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace dsv4::cuda {

enum class TensorElement { kBf16, kFloat32 };

// A 2-D map over a row-major matrix [rows][cols] of `element` whose boxes are box_rows rows of
// 128 bytes (the 128-byte swizzle the sm_90 kernels' operands use: 64 bf16 or 32 fp32 columns);
// coordinates outside the matrix read as zero.
CUtensorMap tensor_map_swizzle128(const void* base, TensorElement element, int64_t rows,
                                  int64_t cols, int32_t box_rows);

}  // namespace dsv4::cuda
