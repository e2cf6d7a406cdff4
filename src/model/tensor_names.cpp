#include "model/tensor_names.h"

#include <array>
#include <string_view>
#include <utility>

namespace dsv4 {
namespace {

constexpr std::string_view kTransformersPrefix = "model.";

// Whole-name renames, official first, as transformers 5.17 writes them (after the prefix).
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kRenames = {{
    {"embed.weight", "embed_tokens.weight"},
    {"hc_head_fn", "hc_head.hc_fn"},
    {"hc_head_base", "hc_head.hc_base"},
    {"hc_head_scale", "hc_head.hc_scale"},
}};

// The attention's kv_norm is saved as `attn.norm`; the compressors' norms keep their names.
constexpr std::string_view kOfficialKvNorm = ".attn.kv_norm.weight";
constexpr std::string_view kTransformersKvNorm = ".attn.norm.weight";

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string replace_suffix(std::string_view text, std::string_view suffix,
                           std::string_view replacement) {
  return std::string(text.substr(0, text.size() - suffix.size())) + std::string(replacement);
}

}  // namespace

const char* checkpoint_layout_name(CheckpointLayout layout) {
  switch (layout) {
    case CheckpointLayout::kOfficial:
      return "official";
    case CheckpointLayout::kTransformers:
      return "transformers";
  }
  return "?";
}

std::string official_tensor_name(const std::string& stored_name) {
  const std::string_view name(stored_name);
  if (!name.starts_with(kTransformersPrefix)) return stored_name;
  const std::string_view rest = name.substr(kTransformersPrefix.size());
  for (const auto& [official, renamed] : kRenames) {
    if (rest == renamed) return std::string(official);
  }
  if (ends_with(rest, kTransformersKvNorm)) {
    return replace_suffix(rest, kTransformersKvNorm, kOfficialKvNorm);
  }
  return std::string(rest);
}

std::string layout_tensor_name(const std::string& official_name, CheckpointLayout layout) {
  if (layout == CheckpointLayout::kOfficial || official_name == "head.weight") return official_name;
  const std::string_view name(official_name);
  const std::string prefix(kTransformersPrefix);
  for (const auto& [official, renamed] : kRenames) {
    if (name == official) return prefix + std::string(renamed);
  }
  if (ends_with(name, kOfficialKvNorm)) {
    return prefix + replace_suffix(name, kOfficialKvNorm, kTransformersKvNorm);
  }
  return prefix + official_name;
}

CheckpointLayout detect_layout(const TensorStore& store) {
  for (const TensorView& view : store.tensors()) {
    if (std::string_view(view.name).starts_with(kTransformersPrefix)) {
      return CheckpointLayout::kTransformers;
    }
  }
  return CheckpointLayout::kOfficial;
}

std::string partner_tensor_name(const std::string& weight_name, std::string_view suffix) {
  constexpr std::string_view kWeightSuffix = ".weight";
  const std::string_view name(weight_name);
  const std::string_view base =
      ends_with(name, kWeightSuffix) ? name.substr(0, name.size() - kWeightSuffix.size()) : name;
  return std::string(base) + std::string(suffix);
}

}  // namespace dsv4
