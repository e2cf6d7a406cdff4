#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using nlohmann::json;
using test::error_message;

// Flash's compress_ratios as published: 43 layers then one MTP entry.
json flash_ratios() {
  json ratios = {0, 0};
  for (int layer = 2; layer < 43; ++layer) ratios.push_back(layer % 2 == 0 ? 4 : 128);
  ratios.push_back(0);
  return ratios;
}

// deepseek-ai/DeepSeek-V4-Flash inference/config.json (no n_mtp_layers, norm_eps or hc_eps).
json official_flash() {
  json config = json::parse(R"({
    "vocab_size": 129280, "dim": 4096, "moe_inter_dim": 2048, "n_layers": 43, "n_hash_layers": 3,
    "n_heads": 64, "n_routed_experts": 256, "n_shared_experts": 1, "n_activated_experts": 6,
    "score_func": "sqrtsoftplus", "route_scale": 1.5, "swiglu_limit": 10.0, "q_lora_rank": 1024,
    "head_dim": 512, "rope_head_dim": 64, "o_groups": 8, "o_lora_rank": 1024,
    "window_size": 128, "original_seq_len": 65536, "rope_theta": 10000, "rope_factor": 16,
    "beta_fast": 32, "beta_slow": 1, "index_n_heads": 64, "index_head_dim": 128,
    "index_topk": 512, "hc_mult": 4, "hc_sinkhorn_iters": 20, "dtype": "fp8",
    "scale_fmt": "ue8m0", "expert_dtype": "fp4", "compress_rope_theta": 160000})");
  config["compress_ratios"] = flash_ratios();
  return config;
}

// The Hugging Face root config.json of DeepSeek-V4-Flash.
json huggingface_flash() {
  json config = json::parse(R"({
    "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
    "vocab_size": 129280, "hidden_size": 4096, "moe_intermediate_size": 2048,
    "num_hidden_layers": 43, "num_attention_heads": 64, "num_key_value_heads": 1,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 6,
    "max_position_embeddings": 1048576, "rms_norm_eps": 1e-6, "rope_theta": 10000,
    "q_lora_rank": 1024, "qk_rope_head_dim": 64, "head_dim": 512, "sliding_window": 128,
    "compress_rope_theta": 160000, "o_lora_rank": 1024, "o_groups": 8, "index_n_heads": 64,
    "index_head_dim": 128, "index_topk": 512, "num_hash_layers": 3, "hc_mult": 4,
    "hc_eps": 1e-6, "hc_sinkhorn_iters": 20, "swiglu_limit": 10.0,
    "routed_scaling_factor": 1.5, "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc",
    "num_nextn_predict_layers": 1,
    "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}})");
  config["compress_ratios"] = flash_ratios();
  return config;
}

// Written by transformers 5.17's DeepseekV4Config.save_pretrained (a tiny test model).
constexpr const char* kTransformersSaved =
    R"({"compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 8}, "compress_rope_theta": 160000.0, "hc_eps": 1e-06, "hc_mult": 4, "hc_sinkhorn_iters": 20, "head_dim": 64, "hidden_size": 64, "index_head_dim": 32, "index_n_heads": 2, "index_topk": 4, "layer_types": ["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention", "compressed_sparse_attention"], "max_position_embeddings": 1024, "mlp_layer_types": ["hash_moe", "hash_moe", "moe", "moe"], "moe_intermediate_size": 32, "n_routed_experts": 4, "n_shared_experts": 1, "num_attention_heads": 4, "num_experts_per_tok": 2, "num_hidden_layers": 4, "num_nextn_predict_layers": 1, "o_groups": 2, "o_lora_rank": 16, "partial_rotary_factor": 0.125, "q_lora_rank": 32, "qk_rope_head_dim": 8, "rms_norm_eps": 1e-06, "rope_parameters": {"compress": {"attention_factor": 1.0, "beta_fast": 32, "beta_slow": 1, "factor": 16, "original_max_position_embeddings": 64, "partial_rotary_factor": 0.125, "rope_theta": 160000.0, "rope_type": "yarn"}, "main": {"partial_rotary_factor": 0.125, "rope_theta": 10000.0, "rope_type": "default"}}, "rope_theta": 10000.0, "routed_scaling_factor": 1.5, "scoring_func": "sqrtsoftplus", "sliding_window": 8, "swiglu_limit": 10.0, "vocab_size": 256, "model_type": "deepseek_v4"})";

// A minimal transformers-spelled config; tests add the keys they are about.
json transformers_base() {
  return json::parse(R"({"model_type": "deepseek_v4", "vocab_size": 256, "hidden_size": 64,
    "num_hidden_layers": 6, "num_attention_heads": 4, "head_dim": 64, "q_lora_rank": 32,
    "o_groups": 2, "o_lora_rank": 16, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "index_n_heads": 2, "index_head_dim": 32, "index_topk": 4,
    "sliding_window": 8})");
}

TEST(OfficialConfig, PublishedFlashConfigEqualsFlashPreset) {
  const ModelConfig config = parse_config(official_flash(), "flash/inference/config.json");
  test::expect_same_config(config, preset_config("flash"));
  EXPECT_EQ(config.source, "flash/inference/config.json");
}

TEST(OfficialConfig, MtpLayerCountComesFromExtraCompressRatios) {
  EXPECT_EQ(parse_config(official_flash(), "c.json").n_mtp_layers, 1);
}

TEST(OfficialConfig, ExplicitMtpLayerCountWins) {
  json config = official_flash();
  config["compress_ratios"].erase(config["compress_ratios"].size() - 1);
  config["n_mtp_layers"] = 1;
  EXPECT_EQ(parse_config(config, "c.json").n_mtp_layers, 1);
}

TEST(OfficialConfig, RatioFourIsCsaAndOtherRatiosAreHca) {
  json config = official_flash();
  config["compress_ratios"][3] = 16;
  const ModelConfig parsed = parse_config(config, "c.json");
  EXPECT_EQ(parsed.layers[2].attention, AttentionKind::kCompressedSparse);
  EXPECT_EQ(parsed.layers[3].attention, AttentionKind::kHeavilyCompressed);
  EXPECT_EQ(parsed.layers[3].compress_ratio, 16);
  EXPECT_EQ(parsed.layers[0].attention, AttentionKind::kSlidingWindow);
}

TEST(OfficialConfig, CompressRatiosOfWrongLengthNameTheFieldAndFile) {
  json config = official_flash();
  config["compress_ratios"] = {0, 4, 128};
  const std::string message = error_message([&] { parse_config(config, "bad/config.json"); });
  EXPECT_NE(message.find("bad/config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("compress_ratios"), std::string::npos) << message;
  EXPECT_NE(message.find("3 entries, fewer than the 43 layers"), std::string::npos) << message;
}

TEST(OfficialConfig, TrailingCompressRatiosBeyondMtpAreIgnored) {
  json config = official_flash();
  config["n_mtp_layers"] = 0;
  config["compress_ratios"].push_back(0);
  const ModelConfig parsed = parse_config(config, "c.json");
  EXPECT_EQ(parsed.n_mtp_layers, 0);
  EXPECT_EQ(parsed.layers.size(), 43u);
}

TEST(OfficialConfig, CompressedMtpLayerIsRejected) {
  json config = official_flash();
  config["compress_ratios"].back() = 4;
  const std::string message = error_message([&] { parse_config(config, "c.json"); });
  EXPECT_NE(message.find("MTP"), std::string::npos) << message;
}

TEST(OfficialConfig, MissingRequiredFieldIsNamed) {
  json config = official_flash();
  config.erase("dim");
  config["n_layers"] = 43;
  const std::string message = error_message([&] { parse_config(config, "x/config.json"); });
  EXPECT_NE(message.find("x/config.json: missing field 'dim'"), std::string::npos) << message;
}

TEST(OfficialConfig, FieldOfWrongTypeIsNamed) {
  json config = official_flash();
  config["n_heads"] = "sixty-four";
  const std::string message = error_message([&] { parse_config(config, "x/config.json"); });
  EXPECT_NE(message.find("'n_heads' must be an integer"), std::string::npos) << message;
}

TEST(HuggingFaceConfig, PublishedFlashConfigEqualsFlashPreset) {
  test::expect_same_config(parse_config(huggingface_flash(), "flash/config.json"),
                           preset_config("flash"));
}

TEST(HuggingFaceConfig, WrongModelTypeIsRejected) {
  json config = huggingface_flash();
  config["model_type"] = "deepseek_v3";
  const std::string message = error_message([&] { parse_config(config, "c.json"); });
  EXPECT_NE(message.find("deepseek_v3"), std::string::npos) << message;
}

TEST(HuggingFaceConfig, UnsupportedRopeScalingTypeIsNamed) {
  json config = huggingface_flash();
  config["rope_scaling"]["type"] = "linear";
  const std::string message = error_message([&] { parse_config(config, "c.json"); });
  EXPECT_NE(message.find("rope_scaling.rope_type"), std::string::npos) << message;
  EXPECT_NE(message.find("linear"), std::string::npos) << message;
}

TEST(TransformersConfig, SavedExampleParses) {
  const ModelConfig c = parse_config(json::parse(kTransformersSaved), "tf/config.json");
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 4);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_head_dim, 8);
  EXPECT_EQ(c.q_lora_rank, 32);
  EXPECT_EQ(c.o_groups, 2);
  EXPECT_EQ(c.o_lora_rank, 16);
  EXPECT_EQ(c.n_routed_experts, 4);
  EXPECT_EQ(c.n_activated_experts, 2);
  EXPECT_EQ(c.moe_inter_dim, 32);
  EXPECT_EQ(c.route_scale, 1.5);
  EXPECT_EQ(c.window_size, 8);
  EXPECT_EQ(c.index_n_heads, 2);
  EXPECT_EQ(c.index_head_dim, 32);
  EXPECT_EQ(c.index_topk, 4);
  EXPECT_EQ(c.n_mtp_layers, 1);
  EXPECT_EQ(c.max_seq_len, 1024);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.compress_rope_theta, 160000.0);
  EXPECT_EQ(c.original_seq_len, 64);
  EXPECT_EQ(c.rope_factor, 16.0);
  EXPECT_EQ(c.beta_fast, 32.0);
  EXPECT_EQ(c.beta_slow, 1.0);
}

TEST(TransformersConfig, SavedExampleSchedule) {
  const ModelConfig c = parse_config(json::parse(kTransformersSaved), "tf/config.json");
  ASSERT_EQ(c.layers.size(), 4u);
  EXPECT_EQ(c.layers[0].attention, AttentionKind::kSlidingWindow);
  EXPECT_EQ(c.layers[0].compress_ratio, 0);
  EXPECT_EQ(c.layers[1].attention, AttentionKind::kCompressedSparse);
  EXPECT_EQ(c.layers[1].compress_ratio, 4);
  EXPECT_EQ(c.layers[2].attention, AttentionKind::kHeavilyCompressed);
  EXPECT_EQ(c.layers[2].compress_ratio, 8);
  EXPECT_EQ(c.layers[3].attention, AttentionKind::kCompressedSparse);
  EXPECT_TRUE(c.layers[0].hash_routing);
  EXPECT_TRUE(c.layers[1].hash_routing);
  EXPECT_FALSE(c.layers[2].hash_routing);
  EXPECT_FALSE(c.layers[3].hash_routing);
}

TEST(TransformersConfig, DefaultScheduleIsTwoHcaThenAlternatingHcaCsa) {
  const ModelConfig c = parse_config(transformers_base(), "c.json");
  const AttentionKind h = AttentionKind::kHeavilyCompressed, s = AttentionKind::kCompressedSparse;
  const std::vector<AttentionKind> expected = {h, h, h, s, h, s};
  ASSERT_EQ(c.layers.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(c.layers[i].attention, expected[i]) << i;
  EXPECT_EQ(c.layers[0].compress_ratio, 128);
  EXPECT_EQ(c.layers[3].compress_ratio, 4);
}

TEST(TransformersConfig, DefaultRoutingHashesTheFirstThreeLayers) {
  const ModelConfig c = parse_config(transformers_base(), "c.json");
  for (size_t i = 0; i < c.layers.size(); ++i) EXPECT_EQ(c.layers[i].hash_routing, i < 3) << i;
}

TEST(TransformersConfig, LegacyCompressRatiosAndNumHashLayersAreAccepted) {
  json config = transformers_base();
  config["compress_ratios"] = {0, 4, 16, 4, 16, 0, 0};
  config["num_hash_layers"] = 1;
  config["num_nextn_predict_layers"] = 1;
  const ModelConfig c = parse_config(config, "c.json");
  EXPECT_EQ(c.layers[2].attention, AttentionKind::kHeavilyCompressed);
  EXPECT_EQ(c.layers[2].compress_ratio, 16);
  EXPECT_EQ(c.layers[5].attention, AttentionKind::kSlidingWindow);
  EXPECT_TRUE(c.layers[0].hash_routing);
  EXPECT_FALSE(c.layers[1].hash_routing);
}

TEST(TransformersConfig, PartialRotaryFactorGivesRopeHeadDim) {
  json config = transformers_base();
  config["partial_rotary_factor"] = 0.25;
  EXPECT_EQ(parse_config(config, "c.json").rope_head_dim, 16);
}

TEST(TransformersConfig, RopeHeadDimDefaultsToOneEighthOfHeadDim) {
  EXPECT_EQ(parse_config(transformers_base(), "c.json").rope_head_dim, 8);
}

TEST(TransformersConfig, FlatRopeParametersAreTheCompressedYarn) {
  json config = transformers_base();
  config["rope_theta"] = 5000.0;
  config["compress_rope_theta"] = 80000.0;
  config["rope_parameters"] = {{"rope_type", "yarn"},
                               {"factor", 4.0},
                               {"original_max_position_embeddings", 512},
                               {"beta_fast", 16},
                               {"beta_slow", 2}};
  const ModelConfig c = parse_config(config, "c.json");
  EXPECT_EQ(c.rope_theta, 5000.0);
  EXPECT_EQ(c.compress_rope_theta, 80000.0);
  EXPECT_EQ(c.rope_factor, 4.0);
  EXPECT_EQ(c.original_seq_len, 512);
  EXPECT_EQ(c.beta_fast, 16.0);
  EXPECT_EQ(c.beta_slow, 2.0);
}

TEST(TransformersConfig, DefaultCompressRopeHasNoYarn) {
  json config = json::parse(kTransformersSaved);
  config["rope_parameters"]["compress"] = {{"rope_type", "default"}, {"rope_theta", 40000.0}};
  const ModelConfig c = parse_config(config, "c.json");
  EXPECT_EQ(c.original_seq_len, 0);
  EXPECT_EQ(c.compress_rope_theta, 40000.0);
}

TEST(TransformersConfig, LayerTypesOfWrongLengthAreRejected) {
  json config = json::parse(kTransformersSaved);
  config["layer_types"].erase(0);
  const std::string message = error_message([&] { parse_config(config, "tf/config.json"); });
  EXPECT_NE(message.find("tf/config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("layer_types"), std::string::npos) << message;
}

TEST(TransformersConfig, UnknownLayerTypeIsNamed) {
  json config = json::parse(kTransformersSaved);
  config["layer_types"][2] = "full_attention";
  const std::string message = error_message([&] { parse_config(config, "c.json"); });
  EXPECT_NE(message.find("full_attention"), std::string::npos) << message;
}

TEST(TransformersConfig, UnknownMlpLayerTypeIsNamed) {
  json config = json::parse(kTransformersSaved);
  config["mlp_layer_types"][1] = "dense";
  const std::string message = error_message([&] { parse_config(config, "c.json"); });
  EXPECT_NE(message.find("mlp_layer_types"), std::string::npos) << message;
  EXPECT_NE(message.find("dense"), std::string::npos) << message;
}

TEST(ConfigSpelling, UnrecognisedJsonIsRejected) {
  const std::string message = error_message([] {
    parse_config(json{{"foo", 1}}, "other/config.json");
  });
  EXPECT_NE(message.find("other/config.json: not a DeepSeek-V4 config"), std::string::npos)
      << message;
}

TEST(LoadConfig, ReadsConfigJsonOfTheDirectory) {
  test::TempDir dir;
  test::write_text(dir / "config.json", kTransformersSaved);
  const ModelConfig c = load_config(dir.path());
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.source, (dir / "config.json").string());
}

TEST(LoadConfig, FallsBackToInferenceConfigJson) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "inference");
  test::write_text(dir / "inference" / "config.json", official_flash().dump());
  EXPECT_EQ(load_config(dir.path()).dim, 4096);
}

TEST(LoadConfig, MissingConfigJsonIsReported) {
  test::TempDir dir;
  const std::string message = error_message([&] { load_config(dir.path()); });
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("no config.json"), std::string::npos) << message;
}

TEST(LoadConfig, MissingDirectoryIsReported) {
  const std::string message = error_message([] { load_config("/nonexistent/dsv4-model"); });
  EXPECT_EQ(message, "/nonexistent/dsv4-model: model directory does not exist");
}

TEST(LoadConfig, InvalidJsonNamesTheFile) {
  test::TempDir dir;
  test::write_text(dir / "config.json", "{\"dim\": 12,");
  const std::string message = error_message([&] { load_config(dir.path()); });
  EXPECT_NE(message.find((dir / "config.json").string() + ": invalid JSON"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace dsv4
