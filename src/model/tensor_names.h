// The two checkpoint layouts' tensor names. Everything inside the engine uses the official
// names (MODEL.md §4); transformers' save_pretrained adds a `model.` prefix and renames a few.
#pragma once

#include <string>
#include <string_view>

#include "model/safetensors.h"

namespace dsv4 {

enum class CheckpointLayout {
  kOfficial,      // deepseek-ai/DeepSeek-V4-*: embed.weight, layers.N.attn.kv_norm.weight, ...
  kTransformers,  // save_pretrained: model.embed_tokens.weight, model.layers.N.attn.norm.weight
};
const char* checkpoint_layout_name(CheckpointLayout layout);

// The official name of a name stored in either layout.
std::string official_tensor_name(const std::string& stored_name);
// The name an official tensor has in `layout`.
std::string layout_tensor_name(const std::string& official_name, CheckpointLayout layout);

// A weight's partner tensor: "<base>.weight" -> "<base><suffix>". Official block scales are
// ".scale"; NVFP4 re-quantized checkpoints (ModelOpt) use ".weight_scale", ".weight_scale_2"
// (the fp32 global scale) and ".input_scale" (a static activation scale).
std::string partner_tensor_name(const std::string& weight_name, std::string_view suffix);
// transformers' layout when any stored name carries the `model.` prefix.
CheckpointLayout detect_layout(const TensorStore& store);

}  // namespace dsv4
