// The one entry point the CLI uses to get a model: a checkpoint directory, or a synthetic
// random model named "synthetic:tiny" / "synthetic:small".
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4 {

inline constexpr const char* kSyntheticSpecPrefix = "synthetic:";

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  std::string description;            // one line; says so plainly when the weights are random
  std::vector<std::string> warnings;  // checkpoint tensors the config does not use
};

LoadedModel load_model(const std::string& spec);

// What `dsv4 inspect` prints; for a directory it reads headers only.
std::string inspect_model(const std::string& spec);

}  // namespace dsv4
