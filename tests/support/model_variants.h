// The models of the model-level tests: synthetic:tiny and variants of it: one layer, or its
// sublayer outputs scaled down (a better-conditioned model: the residual stream dominates each
// sublayer's contribution, as in trained models, so one FP8 rounding flip moves the logits
// less).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/model_source.h"

namespace dsv4::testing {

inline const LoadedModel& synthetic_tiny() {
  static const LoadedModel model = load_model("synthetic:tiny");
  return model;
}

// n token ids drawn uniformly from synthetic:tiny's vocabulary.
inline std::vector<int32_t> random_token_ids(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, int32_t(synthetic_tiny().config.vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = dist(rng);
  return ids;
}

// 1/32: a power of two, so scaling the block scales keeps every weight exactly representable.
inline constexpr float kWellConditionedScale = 1.0f / 32.0f;

// A one-layer model made of layer `index` (its attention kind and routing).
inline LoadedModel single_layer_model(const LoadedModel& m, int64_t index) {
  LoadedModel one{m.config, m.weights, m.description, {}};
  one.config.n_layers = 1;
  one.config.layers = {m.config.layers[size_t(index)]};
  one.weights.blocks = {m.weights.blocks[size_t(index)]};
  one.weights.mtp.clear();
  return one;
}

// wo_b and every expert's w2 times `factor` (through the block scales where there are some).
inline LoadedModel scaled_sublayer_outputs(const LoadedModel& m, float factor) {
  LoadedModel scaled = m;
  const auto scale = [factor](LinearWeight& w) {
    if (w.scales.empty()) {
      for (float& v : w.values) v *= factor;
    } else {
      for (float& s : w.scales) s *= factor;
    }
  };
  for (BlockWeights& b : scaled.weights.blocks) {
    scale(b.attn.wo_b);
    for (ExpertWeights& e : b.ffn.experts) scale(e.w2);
    scale(b.ffn.shared.w2);
  }
  return scaled;
}

// The same weights with every routed expert re-expressed as NVFP4: each ue8m0 scale s of 32
// inputs becomes two e4m3 scales f·s of 16 inputs and the global scale is 1/f (f = 16 for w1
// and w2, 32 for w3, so that w1 and w3 differ), so every dequantized value is unchanged.
inline ModelWeights with_nvfp4_experts(ModelWeights weights) {
  for (BlockWeights& block : weights.blocks) {
    for (ExpertWeights& expert : block.ffn.experts) {
      for (LinearWeight* w : {&expert.w1, &expert.w2, &expert.w3}) {
        const float f = w == &expert.w3 ? 32.0f : 16.0f;
        std::vector<float> scales;
        for (const float s : w->scales) scales.insert(scales.end(), 2, f * s);
        w->format = WeightFormat::kNvFp4;
        w->scales = scales;
        w->global_scale = 1.0f / f;
      }
    }
  }
  return weights;
}

}  // namespace dsv4::testing
