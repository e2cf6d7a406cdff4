// Writes ModelWeights as a checkpoint directory that load_checkpoint_weights reads back
// unchanged: tests build fixtures with it, tools export synthetic models with it.
#pragma once

#include <cstdint>
#include <filesystem>

#include "model/config.h"
#include "model/tensor_names.h"
#include "model/weights.h"

namespace dsv4 {

// config.json in the layout's spelling plus the tensors in their stored formats: FP8 / FP4
// linears as e4m3 / packed e2m1 codes with ue8m0 scales (F32 scales when a scale is not a
// power of two), bf16 and f32 linears as such, norm weights bf16 when exact (else f32), other
// vectors f32, tid2eid I64. With shards > 1 the tensors are split over that many files and
// model.safetensors.index.json maps them. Throws if a value does not fit its format.
void write_checkpoint(const std::filesystem::path& dir, const ModelConfig& config,
                      const ModelWeights& weights, CheckpointLayout layout, int64_t shards = 1);

}  // namespace dsv4
