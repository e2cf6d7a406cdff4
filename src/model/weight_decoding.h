// Checks a stored tensor against what the config expects of it, and decodes it into the
// in-memory representation of weights.h: e4m3 / e2m1 codes become their unscaled float values,
// ue8m0 scales become floats, bf16 is widened. The conversions are core/formats.h's.
#pragma once

#include <cstdint>
#include <vector>

#include "model/safetensors.h"
#include "model/tensor_schema.h"
#include "model/weights.h"

namespace dsv4 {

// FP8 (F8_E4M3) and FP4 (I8 / U8 packed e2m1) tensors carry block scales: ".scale" in the
// official layout (ue8m0 per 128x128 / per 32 inputs), or NVFP4's ".weight_scale" (e4m3 per 16
// inputs) with the fp32 global ".weight_scale_2".
bool has_block_scales(DType dtype);

// Throws, naming the file, the tensor, the expected and the actual dtype or shape, unless
// `weight` (with `scale`, required exactly when has_block_scales, and `global_scale`, required
// exactly for NVFP4) can hold a tensor of `role` with logical `shape`. Returns the format a
// linear decodes to (kF32 / kBF16 otherwise). Packed FP4 with e4m3 block scales is NVFP4.
WeightFormat check_stored_tensor(TensorRole role, const std::vector<int64_t>& shape,
                                 const TensorView& weight, const TensorView* scale,
                                 const TensorView* global_scale = nullptr);

// Decoding, parallel over rows. `format` is what check_stored_tensor returned.
void decode_linear(const TensorView& weight, const TensorView* scale,
                   const TensorView* global_scale, WeightFormat format, int64_t rows, int64_t cols,
                   LinearWeight& out);
void decode_floats(const TensorView& view, std::vector<float>& out);  // F32 or BF16
// I32 or I64 expert ids; each must lie in [0, n_experts).
void decode_expert_table(const TensorView& view, int64_t n_experts, std::vector<int32_t>& out);

}  // namespace dsv4
