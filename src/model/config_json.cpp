#include "model/config_json.h"

#include <string>
#include <vector>

#include "core/error.h"

namespace dsv4 {
namespace {

using nlohmann::json;

// Number of leading hash-routed layers; throws if hash routing is not a prefix.
int64_t hash_prefix_length(const ModelConfig& c) {
  int64_t count = 0;
  while (count < c.n_layers && c.layers[size_t(count)].hash_routing) ++count;
  for (int64_t i = count; i < c.n_layers; ++i) {
    if (c.layers[size_t(i)].hash_routing) {
      fail(
          "{}: layer {} is hash-routed after a score-routed layer; the official config keys "
          "cannot say that",
          c.source, i);
    }
  }
  return count;
}

json official_json(const ModelConfig& c) {
  std::vector<int64_t> ratios;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerSpec& layer = c.layers[i];
    const bool csa = layer.attention == AttentionKind::kCompressedSparse;
    if (csa != (layer.compress_ratio == 4)) {
      fail("{}: layer {} is {} at ratio {}; the official config keys tie CSA to ratio 4", c.source,
           i, attention_kind_name(layer.attention), layer.compress_ratio);
    }
    ratios.push_back(layer.compress_ratio);
  }
  ratios.insert(ratios.end(), size_t(c.n_mtp_layers), 0);
  return json{{"vocab_size", c.vocab_size},
              {"dim", c.dim},
              {"moe_inter_dim", c.moe_inter_dim},
              {"n_layers", c.n_layers},
              {"n_hash_layers", hash_prefix_length(c)},
              {"n_mtp_layers", c.n_mtp_layers},
              {"n_heads", c.n_heads},
              {"n_routed_experts", c.n_routed_experts},
              {"n_shared_experts", c.n_shared_experts},
              {"n_activated_experts", c.n_activated_experts},
              {"score_func", c.score_func},
              {"route_scale", c.route_scale},
              {"swiglu_limit", c.swiglu_limit},
              {"q_lora_rank", c.q_lora_rank},
              {"head_dim", c.head_dim},
              {"rope_head_dim", c.rope_head_dim},
              {"norm_eps", c.norm_eps},
              {"o_groups", c.o_groups},
              {"o_lora_rank", c.o_lora_rank},
              {"window_size", c.window_size},
              {"original_seq_len", c.original_seq_len},
              {"rope_theta", c.rope_theta},
              {"rope_factor", c.rope_factor},
              {"beta_fast", c.beta_fast},
              {"beta_slow", c.beta_slow},
              {"index_n_heads", c.index_n_heads},
              {"index_head_dim", c.index_head_dim},
              {"index_topk", c.index_topk},
              {"hc_mult", c.hc_mult},
              {"hc_sinkhorn_iters", c.hc_sinkhorn_iters},
              {"hc_eps", c.hc_eps},
              {"compress_rope_theta", c.compress_rope_theta},
              {"compress_ratios", ratios},
              {"max_seq_len", c.max_seq_len}};
}

const char* transformers_layer_type(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSlidingWindow:
      return "sliding_attention";
    case AttentionKind::kCompressedSparse:
      return "compressed_sparse_attention";
    case AttentionKind::kHeavilyCompressed:
      return "heavily_compressed_attention";
  }
  return "?";
}

json transformers_json(const ModelConfig& c) {
  std::vector<std::string> layer_types, mlp_layer_types;
  json rates = {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}};
  std::vector<bool> rate_seen(2, false);
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerSpec& layer = c.layers[i];
    layer_types.emplace_back(transformers_layer_type(layer.attention));
    mlp_layer_types.emplace_back(layer.hash_routing ? "hash_moe" : "moe");
    if (layer.attention == AttentionKind::kSlidingWindow) continue;
    const size_t kind = layer.attention == AttentionKind::kCompressedSparse ? 0 : 1;
    const char* key = transformers_layer_type(layer.attention);
    if (rate_seen[kind] && rates[key] != layer.compress_ratio) {
      fail(
          "{}: layer {} has ratio {} but another {} layer has {}; transformers' config has one "
          "ratio per attention kind",
          c.source, i, layer.compress_ratio, key, rates[key].dump());
    }
    rates[key] = layer.compress_ratio;
    rate_seen[kind] = true;
  }
  const double partial_rotary_factor = double(c.rope_head_dim) / double(c.head_dim);
  json compress_rope = {{"rope_type", "default"},
                        {"rope_theta", c.compress_rope_theta},
                        {"partial_rotary_factor", partial_rotary_factor}};
  if (c.original_seq_len > 0) {
    compress_rope["rope_type"] = "yarn";
    compress_rope["factor"] = c.rope_factor;
    compress_rope["original_max_position_embeddings"] = c.original_seq_len;
    compress_rope["beta_fast"] = c.beta_fast;
    compress_rope["beta_slow"] = c.beta_slow;
    compress_rope["attention_factor"] = 1.0;
  }
  const json main_rope = {{"rope_type", "default"},
                          {"rope_theta", c.rope_theta},
                          {"partial_rotary_factor", partial_rotary_factor}};
  return json{{"model_type", "deepseek_v4"},
              {"architectures", {"DeepseekV4ForCausalLM"}},
              {"vocab_size", c.vocab_size},
              {"hidden_size", c.dim},
              {"num_hidden_layers", c.n_layers},
              {"num_attention_heads", c.n_heads},
              {"num_key_value_heads", 1},
              {"head_dim", c.head_dim},
              {"qk_rope_head_dim", c.rope_head_dim},
              {"partial_rotary_factor", partial_rotary_factor},
              {"q_lora_rank", c.q_lora_rank},
              {"o_groups", c.o_groups},
              {"o_lora_rank", c.o_lora_rank},
              {"n_routed_experts", c.n_routed_experts},
              {"n_shared_experts", c.n_shared_experts},
              {"num_experts_per_tok", c.n_activated_experts},
              {"moe_intermediate_size", c.moe_inter_dim},
              {"scoring_func", c.score_func},
              {"routed_scaling_factor", c.route_scale},
              {"swiglu_limit", c.swiglu_limit},
              {"sliding_window", c.window_size},
              {"index_n_heads", c.index_n_heads},
              {"index_head_dim", c.index_head_dim},
              {"index_topk", c.index_topk},
              {"hc_mult", c.hc_mult},
              {"hc_sinkhorn_iters", c.hc_sinkhorn_iters},
              {"hc_eps", c.hc_eps},
              {"rms_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"compress_rope_theta", c.compress_rope_theta},
              {"max_position_embeddings", c.max_seq_len},
              {"num_nextn_predict_layers", c.n_mtp_layers},
              {"layer_types", layer_types},
              {"compress_rates", rates},
              {"mlp_layer_types", mlp_layer_types},
              {"rope_parameters", {{"main", main_rope}, {"compress", compress_rope}}}};
}

}  // namespace

nlohmann::json config_to_json(const ModelConfig& config, CheckpointLayout layout) {
  return layout == CheckpointLayout::kOfficial ? official_json(config) : transformers_json(config);
}

}  // namespace dsv4
