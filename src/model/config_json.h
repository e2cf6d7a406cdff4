// A ModelConfig written back as JSON in the spelling that goes with a checkpoint layout:
// official inference/config.json keys, or the keys transformers' save_pretrained writes.
#pragma once

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/tensor_names.h"

namespace dsv4 {

// Throws when the schedule cannot be said in that spelling (the official keys need the
// hash-routed layers first, CSA at ratio 4 and HCA at any other ratio; transformers' need one
// ratio per attention kind).
nlohmann::json config_to_json(const ModelConfig& config, CheckpointLayout layout);

}  // namespace dsv4
