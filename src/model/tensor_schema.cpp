#include "model/tensor_schema.h"

namespace dsv4 {
namespace {

void shape_block(const ModelConfig& config, const LayerSpec& spec, BlockWeights& block) {
  if (spec.attention != AttentionKind::kSlidingWindow) block.attn.compressor.emplace();
  if (spec.attention == AttentionKind::kCompressedSparse) block.attn.indexer.emplace();
  block.ffn.experts.resize(size_t(config.n_routed_experts));
}

}  // namespace

const char* tensor_role_name(TensorRole role) {
  switch (role) {
    case TensorRole::kQuantizedLinear:
      return "FP8 linear";
    case TensorRole::kExpertLinear:
      return "routed-expert linear";
    case TensorRole::kOutputLora:
      return "wo_a linear";
    case TensorRole::kPlainLinear:
      return "bf16 linear";
    case TensorRole::kNormWeight:
      return "norm weight";
    case TensorRole::kFp32Param:
      return "fp32 parameter";
    case TensorRole::kExpertTable:
      return "expert table";
  }
  return "?";
}

ModelWeights empty_weights(const ModelConfig& config, int64_t mtp_layers) {
  ModelWeights weights;
  weights.blocks.resize(size_t(config.n_layers));
  for (size_t i = 0; i < weights.blocks.size(); ++i) {
    shape_block(config, config.layers[i], weights.blocks[i]);
  }
  weights.mtp.resize(size_t(mtp_layers));
  for (MtpWeights& mtp : weights.mtp) shape_block(config, kMtpLayerSpec, mtp.block);
  return weights;
}

int64_t parameter_count(const ModelConfig& config, const ModelWeights& weights) {
  int64_t count = 0;
  visit_tensors(
      config, weights,
      [&](const std::string&, TensorRole, const std::vector<int64_t>& shape, const auto&) {
        int64_t elements = 1;
        for (const int64_t dim : shape) elements *= dim;
        count += elements;
      });
  return count;
}

}  // namespace dsv4
