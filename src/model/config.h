// DeepSeek-V4 hyper-parameters (MODEL.md §1) and the per-layer schedule, whichever spelling
// the checkpoint's config used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dsv4 {

// official: the reference's rounding (bf16 activations, FP8/FP4 quantization, FP8 KV);
// fp32: every weight dequantized exactly, every op in fp32 (what transformers computes).
enum class Numerics { kOfficial, kFp32 };
Numerics parse_numerics(const std::string& name);  // "official" | "fp32"

// Index-list entries per block of the online softmax in DeepSeek's reference attention kernel
// (`sparse_attn_kernel`, block = 64): P is rounded at the running maximum of whole blocks.
constexpr int64_t kAttentionBlockRows = 64;

enum class AttentionKind {
  kSlidingWindow,      // ratio 0: window only
  kCompressedSparse,   // CSA: overlapping compressor + Lightning Indexer top-k
  kHeavilyCompressed,  // HCA: compressor, every completed entry
};
const char* attention_kind_name(AttentionKind kind);

struct LayerSpec {
  AttentionKind attention = AttentionKind::kSlidingWindow;
  int64_t compress_ratio = 0;  // 0 for sliding-window layers
  bool hash_routing = false;   // experts chosen by tid2eid[token] instead of by score
};

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t head_dim = 0;
  int64_t rope_head_dim = 0;
  int64_t q_lora_rank = 0;
  int64_t o_groups = 0;
  int64_t o_lora_rank = 0;
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 1;
  int64_t n_activated_experts = 0;
  int64_t moe_inter_dim = 0;
  std::string score_func = "sqrtsoftplus";
  double route_scale = 1.0;
  double swiglu_limit = 0.0;  // 0: no clamp
  int64_t window_size = 128;
  int64_t index_n_heads = 0;
  int64_t index_head_dim = 0;
  int64_t index_topk = 0;
  int64_t hc_mult = 4;
  int64_t hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double compress_rope_theta = 160000.0;
  // YaRN for compressed layers; original_seq_len == 0 disables it.
  int64_t original_seq_len = 0;
  double rope_factor = 1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t n_mtp_layers = 0;
  int64_t max_seq_len = 1 << 20;  // longest context a sequence may reach
  std::vector<LayerSpec> layers;  // n_layers entries
  std::string source;             // file or preset it came from, named in error messages

  int64_t mix_hc() const { return (2 + hc_mult) * hc_mult; }
  int64_t nope_head_dim() const { return head_dim - rope_head_dim; }
  // Throws dsv4::Error naming the first inconsistent field.
  void validate() const;
  // Human-readable summary: sizes and the layer schedule.
  std::string describe() const;
};

// Parses any of the three spellings (official inference/config.json keys; Hugging Face root
// config.json with compress_ratios; transformers' layer_types / compress_rates /
// mlp_layer_types / rope_parameters). `source` names the file in error messages.
ModelConfig parse_config(const nlohmann::json& json, const std::string& source);
// Reads DIR/config.json, falling back to DIR/inference/config.json.
ModelConfig load_config(const std::filesystem::path& model_dir);
// What Flash and Pro share (vocabulary, head shapes, mHC, RoPE/YaRN, routing function); the
// presets and the synthetic models start from it.
ModelConfig deepseek_v4_shared_settings();
// Real DeepSeek-V4 shapes: "flash" or "pro".
ModelConfig preset_config(const std::string& name);

}  // namespace dsv4
