#include "model/checkpoint.h"

#include <fmt/format.h>

#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "model/tensor_names.h"
#include "model/weight_decoding.h"

namespace dsv4 {
namespace {

// Stored tensors by official name.
class NameIndex {
 public:
  explicit NameIndex(const Checkpoint& checkpoint) {
    for (const TensorView& view : checkpoint.store.tensors()) {
      const auto [it, inserted] = by_official_.emplace(official_tensor_name(view.name), &view);
      if (!inserted) {
        fail("{}: tensors '{}' and '{}' are the same tensor in two layouts",
             checkpoint.dir.string(), it->second->name, view.name);
      }
    }
  }
  const TensorView* find(const std::string& official) const {
    const auto it = by_official_.find(official);
    return it == by_official_.end() ? nullptr : it->second;
  }
  bool has_prefix(const std::string& prefix) const {
    for (const auto& [name, view] : by_official_) {
      if (name.starts_with(prefix)) return true;
    }
    return false;
  }

 private:
  std::unordered_map<std::string, const TensorView*> by_official_;
};

// MTP blocks are optional: count the leading mtp.N. prefixes present in the files.
int64_t present_mtp_layers(const ModelConfig& config, const NameIndex& names) {
  int64_t count = 0;
  while (count < config.n_mtp_layers && names.has_prefix(fmt::format("mtp.{}.", count))) ++count;
  return count;
}

}  // namespace

int64_t PlannedTensor::element_count() const {
  int64_t count = 1;
  for (const int64_t dim : shape) count *= dim;
  return count;
}

uint64_t PlannedTensor::stored_bytes() const {
  return weight->bytes.size() + (scale ? scale->bytes.size() : 0) +
         (global_scale ? global_scale->bytes.size() : 0);
}

int64_t PlannedTensor::scale_count() const {
  return scale ? scale->element_count() : 0;
}

Checkpoint open_checkpoint(const std::filesystem::path& dir) {
  Checkpoint checkpoint{dir, load_config(dir), TensorStore::open_directory(dir),
                        CheckpointLayout::kOfficial};
  checkpoint.layout = detect_layout(checkpoint.store);
  return checkpoint;
}

CheckpointPlan plan_checkpoint(const Checkpoint& checkpoint) {
  const ModelConfig& config = checkpoint.config;
  const NameIndex names(checkpoint);
  CheckpointPlan plan;
  plan.mtp_layers = present_mtp_layers(config, names);

  std::vector<std::string> missing;
  std::unordered_set<std::string> used;
  auto require = [&](const std::string& official, const std::string& what) -> const TensorView* {
    used.insert(official);
    const TensorView* view = names.find(official);
    if (!view) {
      missing.push_back(
          fmt::format("'{}' ({})", layout_tensor_name(official, checkpoint.layout), what));
    }
    return view;
  };
  const ModelWeights shape_only = empty_weights(config, plan.mtp_layers);
  visit_tensors(
      config, shape_only,
      [&](const std::string& name, TensorRole role, const std::vector<int64_t>& shape,
          const auto&) {
        const std::string what = fmt::format("{} {}", tensor_role_name(role), shape_string(shape));
        const TensorView* weight = require(name, what);
        if (!weight) return;
        const TensorView* scale = nullptr;
        const TensorView* global_scale = nullptr;
        if (has_block_scales(weight->dtype)) {
          const std::string nvfp4_scale = partner_tensor_name(name, ".weight_scale");
          if (!names.find(partner_tensor_name(name, ".scale")) && names.find(nvfp4_scale)) {
            scale = require(nvfp4_scale, "");
            global_scale =
                require(partner_tensor_name(name, ".weight_scale_2"),
                        fmt::format("global scale of the NVFP4 tensor '{}'", weight->name));
            used.insert(partner_tensor_name(name, ".input_scale"));
            if (!global_scale) return;
          } else {
            scale = require(partner_tensor_name(name, ".scale"),
                            fmt::format("block scales of the {} tensor '{}'",
                                        dtype_name(weight->dtype), weight->name));
            if (!scale) return;
          }
        }
        const WeightFormat format = check_stored_tensor(role, shape, *weight, scale, global_scale);
        plan.tensors.push_back(
            PlannedTensor{name, role, shape, weight, scale, global_scale, format});
      });
  if (!missing.empty()) {
    fail("{}: missing tensor {}{}", checkpoint.dir.string(), missing.front(),
         missing.size() > 1 ? fmt::format(" and {} more", missing.size() - 1) : std::string());
  }
  for (const TensorView& view : checkpoint.store.tensors()) {
    if (!used.contains(official_tensor_name(view.name))) {
      plan.warnings.push_back(fmt::format("{}: tensor '{}' is not used by this config",
                                          view.file().string(), view.name));
    }
  }
  return plan;
}

}  // namespace dsv4
