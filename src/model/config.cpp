#include "model/config.h"

#include <fmt/format.h>

#include <string>

#include "core/error.h"

namespace dsv4 {
namespace {

// Collapses a sorted list of layer ids into "0-2, 5, 7-9".
std::string format_ranges(const std::vector<int64_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += i == j ? fmt::format("{}", ids[i]) : fmt::format("{}-{}", ids[i], ids[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

char attention_letter(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSlidingWindow:
      return 'W';
    case AttentionKind::kCompressedSparse:
      return 'C';
    case AttentionKind::kHeavilyCompressed:
      return 'H';
  }
  return '?';
}

}  // namespace

Numerics parse_numerics(const std::string& name) {
  if (name == "official") return Numerics::kOfficial;
  if (name == "fp32") return Numerics::kFp32;
  fail("--numerics: unknown mode '{}' (expected official or fp32)", name);
}

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSlidingWindow:
      return "sliding_window";
    case AttentionKind::kCompressedSparse:
      return "csa";
    case AttentionKind::kHeavilyCompressed:
      return "hca";
  }
  return "?";
}

void ModelConfig::validate() const {
  const std::string& where = source.empty() ? std::string("config") : source;
  auto require = [&](bool ok, const char* field, const std::string& rule) {
    if (!ok) fail("{}: {} {}", where, field, rule);
  };
  auto positive = [&](int64_t value, const char* field) {
    require(value > 0, field, fmt::format("must be positive (got {})", value));
  };
  positive(vocab_size, "vocab_size");
  positive(dim, "dim");
  positive(n_layers, "n_layers");
  positive(n_heads, "n_heads");
  positive(head_dim, "head_dim");
  positive(rope_head_dim, "rope_head_dim");
  positive(q_lora_rank, "q_lora_rank");
  positive(o_groups, "o_groups");
  positive(o_lora_rank, "o_lora_rank");
  positive(n_routed_experts, "n_routed_experts");
  positive(n_activated_experts, "n_activated_experts");
  positive(moe_inter_dim, "moe_inter_dim");
  positive(window_size, "window_size");
  positive(hc_mult, "hc_mult");
  positive(hc_sinkhorn_iters, "hc_sinkhorn_iters");
  positive(max_seq_len, "max_seq_len");

  require(rope_head_dim % 2 == 0, "rope_head_dim",
          fmt::format("must be even (got {})", rope_head_dim));
  require(head_dim > rope_head_dim, "head_dim",
          fmt::format("({}) must exceed rope_head_dim ({})", head_dim, rope_head_dim));
  require(n_heads % o_groups == 0, "n_heads",
          fmt::format("({}) must be a multiple of o_groups ({})", n_heads, o_groups));
  // The reference has exactly one shared expert per layer (MoeWeights::shared).
  require(n_shared_experts == 1, "n_shared_experts",
          fmt::format("must be 1 (got {})", n_shared_experts));
  require(n_activated_experts <= n_routed_experts, "n_activated_experts",
          fmt::format("({}) must not exceed n_routed_experts ({})", n_activated_experts,
                      n_routed_experts));
  require(score_func == "sqrtsoftplus" || score_func == "softmax" || score_func == "sigmoid",
          "score_func",
          fmt::format("'{}' is not one of sqrtsoftplus, softmax, sigmoid", score_func));
  require(route_scale > 0, "route_scale", fmt::format("must be positive (got {})", route_scale));
  require(swiglu_limit >= 0, "swiglu_limit",
          fmt::format("must not be negative (got {})", swiglu_limit));
  require(norm_eps > 0, "norm_eps", fmt::format("must be positive (got {})", norm_eps));
  require(hc_eps >= 0, "hc_eps", fmt::format("must not be negative (got {})", hc_eps));
  require(rope_theta > 0, "rope_theta", fmt::format("must be positive (got {})", rope_theta));
  require(compress_rope_theta > 0, "compress_rope_theta",
          fmt::format("must be positive (got {})", compress_rope_theta));
  require(original_seq_len >= 0, "original_seq_len",
          fmt::format("must not be negative (got {})", original_seq_len));
  if (original_seq_len > 0) {
    require(rope_factor > 0, "rope_factor", fmt::format("must be positive (got {})", rope_factor));
    require(beta_fast > 0 && beta_slow > 0, "beta_fast/beta_slow",
            fmt::format("must be positive (got {} / {})", beta_fast, beta_slow));
  }
  require(n_mtp_layers >= 0, "n_mtp_layers",
          fmt::format("must not be negative (got {})", n_mtp_layers));

  require(int64_t(layers.size()) == n_layers, "compress_ratios / layer_types",
          fmt::format("describe {} layers but n_layers is {}", layers.size(), n_layers));
  bool has_csa = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& layer = layers[i];
    const bool windowed = layer.attention == AttentionKind::kSlidingWindow;
    require(windowed ? layer.compress_ratio == 0 : layer.compress_ratio > 0, "compress_ratios",
            fmt::format("layer {}: ratio {} does not fit attention kind {}", i,
                        layer.compress_ratio, attention_kind_name(layer.attention)));
    has_csa = has_csa || layer.attention == AttentionKind::kCompressedSparse;
  }
  if (has_csa) {
    positive(index_n_heads, "index_n_heads");
    positive(index_topk, "index_topk");
    positive(index_head_dim, "index_head_dim");
    // The indexer's rope covers its last rope_head_dim dims (possibly all of them).
    require(index_head_dim >= rope_head_dim, "index_head_dim",
            fmt::format("({}) must be at least rope_head_dim ({})", index_head_dim, rope_head_dim));
  }
}

std::string ModelConfig::describe() const {
  std::vector<int64_t> hash_layers;
  std::string schedule;
  int64_t csa_ratio = 0, hca_ratio = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].hash_routing) hash_layers.push_back(int64_t(i));
    schedule += attention_letter(layers[i].attention);
    if (layers[i].attention == AttentionKind::kCompressedSparse)
      csa_ratio = layers[i].compress_ratio;
    if (layers[i].attention == AttentionKind::kHeavilyCompressed)
      hca_ratio = layers[i].compress_ratio;
  }
  std::string out = fmt::format("DeepSeek-V4 config from {}\n", source.empty() ? "memory" : source);
  out += fmt::format(
      "  sizes: vocab {}, dim {}, {} layers + {} MTP, {} heads x {} (rope {}), q_lora {}, "
      "o_groups {} x o_lora {}\n",
      vocab_size, dim, n_layers, n_mtp_layers, n_heads, head_dim, rope_head_dim, q_lora_rank,
      o_groups, o_lora_rank);
  out += fmt::format(
      "  moe: {} routed + {} shared experts, {} active, inter {}, {} x {}, swiglu limit {}, "
      "hash-routed layers {}\n",
      n_routed_experts, n_shared_experts, n_activated_experts, moe_inter_dim, score_func,
      route_scale, swiglu_limit, format_ranges(hash_layers));
  out += fmt::format(
      "  attention: window {}, CSA ratio {}, HCA ratio {}, indexer {} heads x {} top-{}\n",
      window_size, csa_ratio, hca_ratio, index_n_heads, index_head_dim, index_topk);
  out += fmt::format("  mHC: {} streams, {} Sinkhorn iterations, eps {}; norm eps {}\n", hc_mult,
                     hc_sinkhorn_iters, hc_eps, norm_eps);
  out +=
      fmt::format("  rope: theta {}; compressed layers theta {}", rope_theta, compress_rope_theta);
  out += original_seq_len > 0 ? fmt::format(" with YaRN factor {} over {} (beta {}/{})\n",
                                            rope_factor, original_seq_len, beta_fast, beta_slow)
                              : std::string(" without YaRN\n");
  out += fmt::format("  max context {}\n", max_seq_len);
  out += fmt::format("  layers (W = sliding window, C = CSA, H = HCA): {}\n", schedule);
  return out;
}

}  // namespace dsv4
