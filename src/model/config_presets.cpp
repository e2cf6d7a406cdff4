// The published DeepSeek-V4 shapes (MODEL.md §1), for inspecting and sizing without a
// checkpoint at hand.
#include <string>

#include "core/error.h"
#include "model/config.h"

namespace dsv4 {

ModelConfig deepseek_v4_shared_settings() {
  ModelConfig c;
  c.vocab_size = 129280;
  c.head_dim = 512;
  c.rope_head_dim = 64;
  c.o_lora_rank = 1024;
  c.n_shared_experts = 1;
  c.n_activated_experts = 6;
  c.score_func = "sqrtsoftplus";
  c.swiglu_limit = 10.0;
  c.window_size = 128;
  c.index_n_heads = 64;
  c.index_head_dim = 128;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  c.hc_eps = 1e-6;
  c.norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.compress_rope_theta = 160000.0;
  c.original_seq_len = 65536;
  c.rope_factor = 16.0;
  c.beta_fast = 32.0;
  c.beta_slow = 1.0;
  c.n_mtp_layers = 1;
  c.max_seq_len = 1048576;
  return c;
}

namespace {

LayerSpec compressed_layer(int64_t ratio) {
  return LayerSpec{
      ratio == 4 ? AttentionKind::kCompressedSparse : AttentionKind::kHeavilyCompressed, ratio,
      false};
}

// Layers 0 and 1 use `first_ratio`, then even layers CSA (4) and odd layers HCA (128); the
// first three layers route by token hash.
std::vector<LayerSpec> schedule(int64_t n_layers, int64_t first_ratio) {
  std::vector<LayerSpec> layers;
  for (int64_t i = 0; i < n_layers; ++i) {
    const int64_t ratio = i < 2 ? first_ratio : (i % 2 == 0 ? 4 : 128);
    layers.push_back(ratio == 0 ? LayerSpec{} : compressed_layer(ratio));
    layers.back().hash_routing = i < 3;
  }
  return layers;
}

}  // namespace

ModelConfig preset_config(const std::string& name) {
  ModelConfig c = deepseek_v4_shared_settings();
  if (name == "flash") {
    c.dim = 4096;
    c.n_layers = 43;
    c.n_heads = 64;
    c.q_lora_rank = 1024;
    c.o_groups = 8;
    c.n_routed_experts = 256;
    c.moe_inter_dim = 2048;
    c.route_scale = 1.5;
    c.index_topk = 512;
    c.layers = schedule(c.n_layers, 0);
  } else if (name == "pro") {
    c.dim = 7168;
    c.n_layers = 61;
    c.n_heads = 128;
    c.q_lora_rank = 1536;
    c.o_groups = 16;
    c.n_routed_experts = 384;
    c.moe_inter_dim = 3072;
    c.route_scale = 2.5;
    c.index_topk = 1024;
    c.layers = schedule(c.n_layers, 128);
  } else {
    fail("preset '{}' does not exist (expected flash or pro)", name);
  }
  c.source = "preset " + name;
  c.validate();
  return c;
}

}  // namespace dsv4
