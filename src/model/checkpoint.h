// A model directory on disk: config.json plus safetensors in either layout (official or
// transformers'), checked tensor by tensor against the config and decoded into ModelWeights.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "model/tensor_schema.h"
#include "model/weights.h"

namespace dsv4 {

// An opened checkpoint: config parsed, files mapped, nothing decoded.
struct Checkpoint {
  std::filesystem::path dir;
  ModelConfig config;
  TensorStore store;
  CheckpointLayout layout = CheckpointLayout::kOfficial;
};
Checkpoint open_checkpoint(const std::filesystem::path& dir);

// One expected tensor, found and checked.
struct PlannedTensor {
  std::string name;  // official name
  TensorRole role = TensorRole::kPlainLinear;
  std::vector<int64_t> shape;  // logical shape
  const TensorView* weight = nullptr;
  const TensorView* scale = nullptr;         // FP8 / FP4 / NVFP4 only
  const TensorView* global_scale = nullptr;  // NVFP4 only
  WeightFormat format = WeightFormat::kF32;

  int64_t element_count() const;
  uint64_t stored_bytes() const;
  int64_t scale_count() const;  // 0 unless block-scaled
};

struct CheckpointPlan {
  int64_t mtp_layers = 0;              // MTP blocks present in the files (0 when absent)
  std::vector<PlannedTensor> tensors;  // in visit_tensors order
  std::vector<std::string> warnings;   // stored tensors the config does not use
};

// Finds every tensor the config expects and checks its dtype and shape, without decoding.
// Throws naming the directory and the first missing tensor, or the file and tensor whose dtype
// or shape is wrong.
CheckpointPlan plan_checkpoint(const Checkpoint& checkpoint);

struct CheckpointWeights {
  ModelWeights weights;
  std::vector<std::string> warnings;
};
// Plans, then decodes in parallel; reports progress on stderr when there are gigabytes to read.
CheckpointWeights load_checkpoint_weights(const Checkpoint& checkpoint);

// Config, layer schedule, tensors by dtype, bytes on disk, parameter count and decoded-memory
// estimate; reads headers only, so it works on a full-size checkpoint.
std::string inspect_checkpoint(const std::filesystem::path& dir);

}  // namespace dsv4
