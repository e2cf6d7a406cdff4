#include "cuda/runtime/tensor_map.h"

#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    DSV4_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000,
                                                     cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || entry == nullptr) {
      fail("the CUDA driver does not provide cuTensorMapEncodeTiled (driver older than 12.0?)");
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(entry);
  }();
  return encode;
}

}  // namespace

CUtensorMap tensor_map_bf16_swizzle128(const void* base, int64_t rows, int64_t cols,
                                       int32_t box_rows) {
  constexpr int64_t element_bytes = 2, box_cols = 128 / element_bytes;
  if (rows <= 0 || cols < box_cols || (cols * element_bytes) % 16 != 0 || box_rows <= 0 ||
      box_rows > 256) {
    fail("tensor map: bad shape [{}][{}] with boxes of {} rows", rows, cols, box_rows);
  }
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) {
    fail("tensor map: the matrix at {} is not 16-byte aligned", base);
  }
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(cols * element_bytes)};
  const cuuint32_t box[2] = {cuuint32_t(box_cols), cuuint32_t(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult result = encode_tiled()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides, box,
      element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    fail("cuTensorMapEncodeTiled failed (CUresult {}) for a [{}][{}] bf16 matrix", int(result),
         rows, cols);
  }
  return map;
}

}  // namespace dsv4::cuda
