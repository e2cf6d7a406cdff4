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

// FP8 (F8_E4M3) and FP4 (I8 / U8 packed e2m1) tensors carry a ".scale" partner.
bool has_block_scales(DType dtype);

// Throws, naming the file, the tensor, the expected and the actual dtype or shape, unless
// `weight` (with `scale`, required exactly when has_block_scales) can hold a tensor of `role`
// with logical `shape`. Returns the format a linear decodes to (kF32 / kBF16 otherwise).
WeightFormat check_stored_tensor(TensorRole role, const std::vector<int64_t>& shape,
                                 const TensorView& weight, const TensorView* scale);

// Decoding, parallel over rows. `format` is what check_stored_tensor returned.
void decode_linear(const TensorView& weight, const TensorView* scale, WeightFormat format,
                   int64_t rows, int64_t cols, LinearWeight& out);
void decode_floats(const TensorView& view, std::vector<float>& out);  // F32 or BF16
// I32 or I64 expert ids; each must lie in [0, n_experts).
void decode_expert_table(const TensorView& view, int64_t n_experts, std::vector<int32_t>& out);

}  // namespace dsv4
