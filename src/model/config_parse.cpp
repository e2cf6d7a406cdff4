// Reads the three spellings of a DeepSeek-V4 config into one ModelConfig:
//   official  inference/config.json (dim, n_layers, compress_ratios, ...);
//   HF root   config.json (hidden_size, num_hidden_layers, compress_ratios, rope_scaling, ...);
//   transformers' save_pretrained (layer_types, compress_rates, mlp_layer_types,
//             partial_rotary_factor, rope_parameters {main, compress}).
// Absent keys take the defaults of the code that reads that spelling: the reference's
// ModelArgs for the official keys, transformers' DeepseekV4Config for the others.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"

namespace dsv4 {
namespace {

using nlohmann::json;

// Typed, checked access to one JSON object; errors name the file and the full key path.
class JsonFields {
 public:
  JsonFields(const json& object, const std::string& source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  const std::string& source() const { return source_; }
  std::string path(const char* key) const { return prefix_ + key; }

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  const json& value(const char* key) const {
    if (!has(key)) fail("{}: missing field '{}'", source_, path(key));
    return object_.at(key);
  }

  int64_t integer(const char* key) const {
    const json& v = value(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d)) return int64_t(d);
    }
    fail("{}: field '{}' must be an integer, got {}", source_, path(key), v.dump());
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }

  double real(const char* key) const {
    const json& v = value(key);
    if (!v.is_number())
      fail("{}: field '{}' must be a number, got {}", source_, path(key), v.dump());
    return v.get<double>();
  }
  double real(const char* key, double fallback) const { return has(key) ? real(key) : fallback; }

  std::string text(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = value(key);
    if (!v.is_string())
      fail("{}: field '{}' must be a string, got {}", source_, path(key), v.dump());
    return v.get<std::string>();
  }

  // The nested object under `key`, or nullopt when absent.
  std::optional<JsonFields> object(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& v = value(key);
    if (!v.is_object())
      fail("{}: field '{}' must be an object, got {}", source_, path(key), v.dump());
    return JsonFields(v, source_, path(key) + ".");
  }

  std::vector<int64_t> integers(const char* key) const {
    const json& v = value(key);
    if (!v.is_array()) fail("{}: field '{}' must be a list, got {}", source_, path(key), v.dump());
    std::vector<int64_t> out;
    for (const json& item : v) {
      if (!item.is_number_integer()) {
        fail("{}: field '{}' must hold integers, got {}", source_, path(key), item.dump());
      }
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

  std::vector<std::string> strings(const char* key) const {
    const json& v = value(key);
    if (!v.is_array()) fail("{}: field '{}' must be a list, got {}", source_, path(key), v.dump());
    std::vector<std::string> out;
    for (const json& item : v) {
      if (!item.is_string()) {
        fail("{}: field '{}' must hold strings, got {}", source_, path(key), item.dump());
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

 private:
  const json& object_;
  const std::string& source_;
  std::string prefix_;
};

// compress_ratios lists the main layers, then the MTP layers (which must be sliding-window, as
// in every published checkpoint); published configs may carry further trailing entries, which
// nothing reads. In this spelling 4 means CSA and any other nonzero ratio HCA.
void set_layers_from_ratios(ModelConfig& config, const JsonFields& fields, const char* key) {
  const std::vector<int64_t> ratios = fields.integers(key);
  const int64_t n = config.n_layers;
  if (int64_t(ratios.size()) < n) {
    fail("{}: field '{}' has {} entries, fewer than the {} layers", fields.source(),
         fields.path(key), ratios.size(), n);
  }
  config.layers.assign(size_t(n), LayerSpec{});
  for (size_t i = 0; i < ratios.size(); ++i) {
    const int64_t ratio = ratios[i];
    if (ratio < 0) {
      fail("{}: field '{}' entry {} is negative ({})", fields.source(), fields.path(key), i, ratio);
    }
    if (int64_t(i) >= n) {
      if (int64_t(i) < n + config.n_mtp_layers && ratio != 0) {
        fail("{}: field '{}' entry {} (MTP layer) is {}; only sliding-window MTP layers exist",
             fields.source(), fields.path(key), i, ratio);
      }
      continue;
    }
    LayerSpec& layer = config.layers[i];
    layer.compress_ratio = ratio;
    layer.attention = ratio == 0   ? AttentionKind::kSlidingWindow
                      : ratio == 4 ? AttentionKind::kCompressedSparse
                                   : AttentionKind::kHeavilyCompressed;
  }
}

void set_hash_layers(ModelConfig& config, int64_t n_hash_layers) {
  for (int64_t i = 0; i < config.n_layers; ++i)
    config.layers[size_t(i)].hash_routing = i < n_hash_layers;
}

ModelConfig parse_official(const JsonFields& f) {
  ModelConfig c;
  c.vocab_size = f.integer("vocab_size");
  c.dim = f.integer("dim");
  c.n_layers = f.integer("n_layers");
  c.n_heads = f.integer("n_heads");
  c.head_dim = f.integer("head_dim", 512);
  c.rope_head_dim = f.integer("rope_head_dim", 64);
  c.q_lora_rank = f.integer("q_lora_rank", 1024);
  c.o_groups = f.integer("o_groups", 8);
  c.o_lora_rank = f.integer("o_lora_rank", 1024);
  c.n_routed_experts = f.integer("n_routed_experts");
  c.n_shared_experts = f.integer("n_shared_experts", 1);
  c.n_activated_experts = f.integer("n_activated_experts");
  c.moe_inter_dim = f.integer("moe_inter_dim");
  c.score_func = f.text("score_func", "sqrtsoftplus");
  c.route_scale = f.real("route_scale", 1.0);
  c.swiglu_limit = f.real("swiglu_limit", 0.0);
  c.window_size = f.integer("window_size", 128);
  c.index_n_heads = f.integer("index_n_heads", 64);
  c.index_head_dim = f.integer("index_head_dim", 128);
  c.index_topk = f.integer("index_topk", 512);
  c.hc_mult = f.integer("hc_mult", 4);
  c.hc_sinkhorn_iters = f.integer("hc_sinkhorn_iters", 20);
  c.hc_eps = f.real("hc_eps", 1e-6);
  c.norm_eps = f.real("norm_eps", 1e-6);
  c.rope_theta = f.real("rope_theta", 10000.0);
  c.compress_rope_theta = f.real("compress_rope_theta", 40000.0);
  c.original_seq_len = f.integer("original_seq_len", 0);
  c.rope_factor = f.real("rope_factor", 40.0);
  c.beta_fast = f.real("beta_fast", 32.0);
  c.beta_slow = f.real("beta_slow", 1.0);
  c.max_seq_len = f.integer("max_seq_len", c.max_seq_len);
  // The published inference/config.json has no n_mtp_layers: its compress_ratios carry one
  // entry per MTP layer after the main layers.
  const int64_t listed = int64_t(f.has("compress_ratios") ? f.value("compress_ratios").size() : 0);
  c.n_mtp_layers = f.integer("n_mtp_layers", std::max<int64_t>(listed - c.n_layers, 0));
  set_layers_from_ratios(c, f, "compress_ratios");
  set_hash_layers(c, f.integer("n_hash_layers", 0));
  return c;
}

// YaRN settings of the compressed layers' rope from a rope_scaling / rope_parameters dict.
void set_compress_yarn(ModelConfig& c, const JsonFields& rope) {
  const std::string type = rope.text("rope_type", rope.text("type", "default"));
  if (type == "default") {
    c.original_seq_len = 0;
    return;
  }
  if (type != "yarn") {
    fail("{}: field '{}' is '{}'; DeepSeek-V4 uses 'yarn' or 'default'", rope.source(),
         rope.path("rope_type"), type);
  }
  c.rope_factor = rope.real("factor");
  c.original_seq_len = rope.integer("original_max_position_embeddings", c.max_seq_len);
  c.beta_fast = rope.real("beta_fast", 32.0);
  c.beta_slow = rope.real("beta_slow", 1.0);
}

void set_rope(ModelConfig& c, const JsonFields& f) {
  c.rope_theta = f.real("rope_theta", 10000.0);
  c.compress_rope_theta = f.real("compress_rope_theta", 160000.0);
  c.original_seq_len = 0;
  const std::optional<JsonFields> rope =
      f.has("rope_parameters") ? f.object("rope_parameters") : f.object("rope_scaling");
  if (!rope) return;
  const std::optional<JsonFields> main = rope->object("main");
  const std::optional<JsonFields> compress = rope->object("compress");
  if (main && compress) {
    const std::string main_type = main->text("rope_type", main->text("type", "default"));
    if (main_type != "default") {
      fail("{}: field '{}' is '{}'; sliding-window layers use plain rope ('default')", f.source(),
           main->path("rope_type"), main_type);
    }
    c.rope_theta = main->real("rope_theta", c.rope_theta);
    c.compress_rope_theta = compress->real("rope_theta", c.compress_rope_theta);
    set_compress_yarn(c, *compress);
  } else {
    set_compress_yarn(c, *rope);
  }
}

int64_t rope_head_dim_of(const JsonFields& f, int64_t head_dim) {
  if (f.has("qk_rope_head_dim")) return f.integer("qk_rope_head_dim");
  double factor = 64.0 / 512.0;  // transformers' default_partial_rotary_factor
  if (f.has("partial_rotary_factor")) {
    factor = f.real("partial_rotary_factor");
  } else if (const auto rope = f.object("rope_parameters")) {
    if (const auto main = rope->object("main"))
      factor = main->real("partial_rotary_factor", factor);
  }
  return std::lround(double(head_dim) * factor);
}

// transformers: explicit layer_types > legacy compress_ratios > 2 x HCA then alternating
// HCA / CSA (its V4-Pro default, which starts the alternation with HCA at layer 2).
void set_transformers_layers(ModelConfig& c, const JsonFields& f) {
  int64_t csa_ratio = f.integer("compress_rate_csa", 4);
  int64_t hca_ratio = f.integer("compress_rate_hca", 128);
  if (const auto rates = f.object("compress_rates")) {
    csa_ratio = rates->integer("compressed_sparse_attention", csa_ratio);
    hca_ratio = rates->integer("heavily_compressed_attention", hca_ratio);
  }
  const int64_t n = c.n_layers;
  std::vector<std::string> types;
  if (f.has("layer_types")) {
    types = f.strings("layer_types");
    if (int64_t(types.size()) != n) {
      fail("{}: field 'layer_types' has {} entries but num_hidden_layers is {}", f.source(),
           types.size(), n);
    }
  } else if (f.has("compress_ratios")) {
    set_layers_from_ratios(c, f, "compress_ratios");
    return;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const bool csa = i >= 2 && (i - 2) % 2 == 1;
      types.push_back(csa ? "compressed_sparse_attention" : "heavily_compressed_attention");
    }
  }
  c.layers.assign(size_t(n), LayerSpec{});
  for (size_t i = 0; i < types.size(); ++i) {
    LayerSpec& layer = c.layers[i];
    if (types[i] == "sliding_attention") {
      layer.attention = AttentionKind::kSlidingWindow;
    } else if (types[i] == "compressed_sparse_attention") {
      layer.attention = AttentionKind::kCompressedSparse;
      layer.compress_ratio = csa_ratio;
    } else if (types[i] == "heavily_compressed_attention") {
      layer.attention = AttentionKind::kHeavilyCompressed;
      layer.compress_ratio = hca_ratio;
    } else {
      fail(
          "{}: field 'layer_types' entry {} is '{}'; expected sliding_attention, "
          "compressed_sparse_attention or heavily_compressed_attention",
          f.source(), i, types[i]);
    }
  }
}

void set_transformers_routing(ModelConfig& c, const JsonFields& f) {
  if (!f.has("mlp_layer_types")) {
    set_hash_layers(c, f.integer("num_hash_layers", 3));
    return;
  }
  const std::vector<std::string> types = f.strings("mlp_layer_types");
  if (int64_t(types.size()) != c.n_layers) {
    fail("{}: field 'mlp_layer_types' has {} entries but num_hidden_layers is {}", f.source(),
         types.size(), c.n_layers);
  }
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "hash_moe" && types[i] != "moe") {
      fail("{}: field 'mlp_layer_types' entry {} is '{}'; expected hash_moe or moe", f.source(), i,
           types[i]);
    }
    c.layers[i].hash_routing = types[i] == "hash_moe";
  }
}

ModelConfig parse_transformers(const JsonFields& f) {
  const std::string model_type = f.text("model_type", "deepseek_v4");
  if (model_type != "deepseek_v4") {
    fail("{}: model_type is '{}', expected 'deepseek_v4'", f.source(), model_type);
  }
  if (f.integer("num_key_value_heads", 1) != 1) {
    fail("{}: field 'num_key_value_heads' must be 1 for DeepSeek-V4 (got {})", f.source(),
         f.integer("num_key_value_heads"));
  }
  ModelConfig c;
  c.vocab_size = f.integer("vocab_size");
  c.dim = f.integer("hidden_size");
  c.n_layers = f.integer("num_hidden_layers");
  c.n_heads = f.integer("num_attention_heads");
  c.head_dim = f.integer("head_dim", 512);
  c.rope_head_dim = rope_head_dim_of(f, c.head_dim);
  c.q_lora_rank = f.integer("q_lora_rank", 1024);
  c.o_groups = f.integer("o_groups", 8);
  c.o_lora_rank = f.integer("o_lora_rank", 1024);
  c.n_routed_experts = f.integer("n_routed_experts");
  c.n_shared_experts = f.integer("n_shared_experts", 1);
  c.n_activated_experts = f.integer("num_experts_per_tok");
  c.moe_inter_dim = f.integer("moe_intermediate_size");
  c.score_func = f.text("scoring_func", "sqrtsoftplus");
  c.route_scale = f.real("routed_scaling_factor", 1.5);
  c.swiglu_limit = f.real("swiglu_limit", 10.0);
  c.window_size = f.integer("sliding_window", 128);
  c.index_n_heads = f.integer("index_n_heads", 64);
  c.index_head_dim = f.integer("index_head_dim", 128);
  c.index_topk = f.integer("index_topk", 512);
  c.hc_mult = f.integer("hc_mult", 4);
  c.hc_sinkhorn_iters = f.integer("hc_sinkhorn_iters", 20);
  c.hc_eps = f.real("hc_eps", 1e-6);
  c.norm_eps = f.real("rms_norm_eps", 1e-6);
  c.max_seq_len = f.integer("max_position_embeddings", 1048576);
  c.n_mtp_layers = f.integer("num_nextn_predict_layers", 1);
  set_rope(c, f);
  set_transformers_layers(c, f);
  set_transformers_routing(c, f);
  return c;
}

}  // namespace

ModelConfig parse_config(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) fail("{}: expected a JSON object at the top level", source);
  const JsonFields fields(json, source);
  ModelConfig config;
  if (fields.has("dim") || fields.has("n_layers")) {
    config = parse_official(fields);
  } else if (fields.has("hidden_size") || fields.has("num_hidden_layers")) {
    config = parse_transformers(fields);
  } else {
    fail("{}: not a DeepSeek-V4 config (neither 'dim' nor 'hidden_size' is present)", source);
  }
  config.source = source;
  config.validate();
  return config;
}

ModelConfig load_config(const std::filesystem::path& model_dir) {
  if (!std::filesystem::is_directory(model_dir)) {
    fail("{}: model directory does not exist", model_dir.string());
  }
  std::filesystem::path path = model_dir / "config.json";
  if (!std::filesystem::is_regular_file(path)) path = model_dir / "inference" / "config.json";
  if (!std::filesystem::is_regular_file(path)) {
    fail("{}: no config.json (looked for config.json and inference/config.json)",
         model_dir.string());
  }
  std::ifstream file(path);
  if (!file) fail("{}: cannot open", path.string());
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
  return parse_config(json, path.string());
}

}  // namespace dsv4
