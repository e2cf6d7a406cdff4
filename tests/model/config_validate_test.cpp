#include <gtest/gtest.h>

#include "model/config.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using test::error_message;

// The message validate() gives for the flash preset after `edit`.
template <typename Edit>
std::string validation_error(Edit edit) {
  ModelConfig config = preset_config("flash");
  config.source = "edited.json";
  edit(config);
  return error_message([&] { config.validate(); });
}

TEST(Presets, FlashHasThePublishedSizes) {
  const ModelConfig c = preset_config("flash");
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.n_layers, 43);
  EXPECT_EQ(c.n_heads, 64);
  EXPECT_EQ(c.q_lora_rank, 1024);
  EXPECT_EQ(c.o_groups, 8);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.moe_inter_dim, 2048);
  EXPECT_EQ(c.route_scale, 1.5);
  EXPECT_EQ(c.index_topk, 512);
}

TEST(Presets, FlashSchedule) {
  const ModelConfig c = preset_config("flash");
  ASSERT_EQ(c.layers.size(), 43u);
  EXPECT_EQ(c.layers[0].attention, AttentionKind::kSlidingWindow);
  EXPECT_EQ(c.layers[1].attention, AttentionKind::kSlidingWindow);
  for (size_t i = 2; i < 43; ++i) {
    EXPECT_EQ(c.layers[i].compress_ratio, i % 2 == 0 ? 4 : 128) << i;
    EXPECT_EQ(c.layers[i].attention,
              i % 2 == 0 ? AttentionKind::kCompressedSparse : AttentionKind::kHeavilyCompressed)
        << i;
  }
  for (size_t i = 0; i < 43; ++i) EXPECT_EQ(c.layers[i].hash_routing, i < 3) << i;
}

TEST(Presets, ProHasThePublishedSizes) {
  const ModelConfig c = preset_config("pro");
  EXPECT_EQ(c.dim, 7168);
  EXPECT_EQ(c.n_layers, 61);
  EXPECT_EQ(c.n_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.o_groups, 16);
  EXPECT_EQ(c.n_routed_experts, 384);
  EXPECT_EQ(c.moe_inter_dim, 3072);
  EXPECT_EQ(c.route_scale, 2.5);
  EXPECT_EQ(c.index_topk, 1024);
}

TEST(Presets, ProScheduleStartsWithTwoHcaLayers) {
  const ModelConfig c = preset_config("pro");
  ASSERT_EQ(c.layers.size(), 61u);
  EXPECT_EQ(c.layers[0].compress_ratio, 128);
  EXPECT_EQ(c.layers[1].compress_ratio, 128);
  for (size_t i = 2; i < 61; ++i) EXPECT_EQ(c.layers[i].compress_ratio, i % 2 == 0 ? 4 : 128) << i;
  EXPECT_EQ(c.layers[60].attention, AttentionKind::kCompressedSparse);
}

TEST(Presets, UnknownPresetIsNamed) {
  EXPECT_EQ(error_message([] { preset_config("ultra"); }),
            "preset 'ultra' does not exist (expected flash or pro)");
}

TEST(Validate, HeadsNotDivisibleByOutputGroups) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.o_groups = 7; }),
            "edited.json: n_heads (64) must be a multiple of o_groups (7)");
}

TEST(Validate, OddRopeHeadDim) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.rope_head_dim = 63; }),
            "edited.json: rope_head_dim must be even (got 63)");
}

TEST(Validate, RopeHeadDimAsWideAsTheHead) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.rope_head_dim = 512; }),
            "edited.json: head_dim (512) must exceed rope_head_dim (512)");
}

TEST(Validate, NonPositiveSize) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.q_lora_rank = 0; }),
            "edited.json: q_lora_rank must be positive (got 0)");
}

TEST(Validate, LayerCountDiffersFromSchedule) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.n_layers = 42; }),
            "edited.json: compress_ratios / layer_types describe 43 layers but n_layers is 42");
}

TEST(Validate, MoreActiveExpertsThanExperts) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.n_activated_experts = 300; }),
            "edited.json: n_activated_experts (300) must not exceed n_routed_experts (256)");
}

TEST(Validate, IndexerHeadDimMustBePositive) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.index_head_dim = 0; }),
            "edited.json: index_head_dim must be positive (got 0)");
}

TEST(Validate, IndexerSizesAreOnlyNeededWithCsaLayers) {
  ModelConfig c = preset_config("flash");
  for (LayerSpec& layer : c.layers) layer = LayerSpec{};
  c.index_n_heads = 0;
  c.index_head_dim = 0;
  EXPECT_NO_THROW(c.validate());
}

TEST(Validate, CompressedLayerNeedsARatio) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.layers[3].compress_ratio = 0; }),
            "edited.json: compress_ratios layer 3: ratio 0 does not fit attention kind hca");
}

TEST(Validate, UnknownScoreFunction) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.score_func = "relu"; }),
            "edited.json: score_func 'relu' is not one of sqrtsoftplus, softmax, sigmoid");
}

TEST(Validate, SharedExpertCountMustBeOne) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.n_shared_experts = 2; }),
            "edited.json: n_shared_experts must be 1 (got 2)");
}

TEST(Validate, ZeroHyperConnectionStreams) {
  EXPECT_EQ(validation_error([](ModelConfig& c) { c.hc_mult = 0; }),
            "edited.json: hc_mult must be positive (got 0)");
}

TEST(Describe, NamesSourceSizesAndSchedule) {
  const std::string text = preset_config("flash").describe();
  EXPECT_NE(text.find("from preset flash"), std::string::npos) << text;
  EXPECT_NE(text.find("dim 4096, 43 layers + 1 MTP"), std::string::npos) << text;
  EXPECT_NE(text.find("hash-routed layers 0-2"), std::string::npos) << text;
  EXPECT_NE(text.find("WWCHCH"), std::string::npos) << text;
  EXPECT_NE(text.find("YaRN factor 16 over 65536"), std::string::npos) << text;
}

}  // namespace
}  // namespace dsv4
