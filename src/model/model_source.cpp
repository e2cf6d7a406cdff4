#include "model/model_source.h"

#include <fmt/format.h>

#include <optional>
#include <string_view>

#include "model/checkpoint.h"
#include "model/synthetic.h"
#include "model/tensor_schema.h"

namespace dsv4 {
namespace {

// The NAME of "synthetic:NAME", or nullopt for a directory.
std::optional<std::string> synthetic_name(const std::string& spec) {
  const std::string_view prefix(kSyntheticSpecPrefix);
  if (!std::string_view(spec).starts_with(prefix)) return std::nullopt;
  return spec.substr(prefix.size());
}

std::string summary(const ModelConfig& config, int64_t parameters) {
  return fmt::format("{} layers, dim {}, {} routed experts, {:.1f}M parameters", config.n_layers,
                     config.dim, config.n_routed_experts, double(parameters) / 1e6);
}

}  // namespace

LoadedModel load_model(const std::string& spec) {
  if (const auto name = synthetic_name(spec)) {
    LoadedModel model;
    model.config = synthetic_config(*name);
    model.weights = synthetic_weights(model.config, kSyntheticSeed);
    model.description = fmt::format(
        "{}: RANDOM weights (seed {:#x}), not a trained model; {}", spec, kSyntheticSeed,
        summary(model.config, parameter_count(model.config, model.weights)));
    return model;
  }
  const Checkpoint checkpoint = open_checkpoint(spec);
  CheckpointWeights loaded = load_checkpoint_weights(checkpoint);
  LoadedModel model{checkpoint.config, std::move(loaded.weights), "", std::move(loaded.warnings)};
  model.description =
      fmt::format("{} ({} checkpoint layout): {}", spec, checkpoint_layout_name(checkpoint.layout),
                  summary(model.config, parameter_count(model.config, model.weights)));
  return model;
}

std::string inspect_model(const std::string& spec) {
  const auto name = synthetic_name(spec);
  if (!name) return inspect_checkpoint(spec);
  const ModelConfig config = synthetic_config(*name);
  const ModelWeights shape_only = empty_weights(config, config.n_mtp_layers);
  return config.describe() + fmt::format("weights: RANDOM (seed {:#x}), built in memory; {}\n",
                                         kSyntheticSeed,
                                         summary(config, parameter_count(config, shape_only)));
}

}  // namespace dsv4
