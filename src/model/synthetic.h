// Random DeepSeek-V4 models built in memory, for running the engine end to end without a
// checkpoint. They use the official formats (FP8 128x128 linears, MXFP4 experts, bf16 and fp32
// elsewhere), the real vocabulary size, every attention kind and both routings, plus MTP; the
// values are random but scaled so that activations stay in a sane range through the layers.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4 {

inline constexpr uint64_t kSyntheticSeed = 0x5eed0d5e4ull;

// "tiny" (dim 256, 6 layers, ~76M parameters, almost all in the 129280-token embedding and
// head) or "small" (dim 256, 8 layers, ~100M parameters).
ModelConfig synthetic_config(const std::string& name);

// Random weights for any valid config (with config.n_mtp_layers MTP blocks); the same seed
// gives the same bits on every platform.
ModelWeights synthetic_weights(const ModelConfig& config, uint64_t seed);

}  // namespace dsv4
