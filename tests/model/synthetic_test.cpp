#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "model/model_source.h"
#include "model/synthetic.h"
#include "model/synthetic_random.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using test::error_message;

bool has_layer(const ModelConfig& c, AttentionKind kind, bool hash_routing) {
  for (const LayerSpec& layer : c.layers) {
    if (layer.attention == kind && layer.hash_routing == hash_routing) return true;
  }
  return false;
}

uint64_t fnv1a(const std::vector<float>& values, uint64_t hash = 0xcbf29ce484222325ull) {
  for (const float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) hash = (hash ^ ((bits >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  }
  return hash;
}

double standard_deviation(const std::vector<float>& values) {
  double sum = 0, squares = 0;
  for (const float v : values) {
    sum += v;
    squares += double(v) * v;
  }
  const double mean = sum / double(values.size());
  return std::sqrt(squares / double(values.size()) - mean * mean);
}

TEST(SyntheticRandom, NormalishHasUnitVariance) {
  SplitMix64 rng(1);
  std::vector<float> samples(200000);
  for (float& s : samples) s = normalish(rng.next());
  EXPECT_NEAR(standard_deviation(samples), 1.0, 0.01);
}

TEST(SyntheticConfig, TinyHasEveryLayerKindAndRouting) {
  const ModelConfig c = synthetic_config("tiny");
  EXPECT_TRUE(has_layer(c, AttentionKind::kSlidingWindow, true));
  EXPECT_TRUE(has_layer(c, AttentionKind::kCompressedSparse, true));
  EXPECT_TRUE(has_layer(c, AttentionKind::kCompressedSparse, false));
  EXPECT_TRUE(has_layer(c, AttentionKind::kHeavilyCompressed, false));
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.n_mtp_layers, 1);
}

TEST(SyntheticConfig, SmallHasEveryLayerKindAndRouting) {
  const ModelConfig c = synthetic_config("small");
  EXPECT_TRUE(has_layer(c, AttentionKind::kSlidingWindow, true));
  EXPECT_TRUE(has_layer(c, AttentionKind::kCompressedSparse, false));
  EXPECT_TRUE(has_layer(c, AttentionKind::kHeavilyCompressed, false));
}

TEST(SyntheticConfig, IndexerTopKBitesWithinAFewHundredTokens) {
  for (const char* name : {"tiny", "small"}) {
    const ModelConfig c = synthetic_config(name);
    EXPECT_LT(c.index_topk, 300 / 4) << name;
    EXPECT_LT(c.window_size, 300) << name;
  }
}

TEST(SyntheticConfig, QuantizedLinearInputsAreWholeActivationBlocks) {
  for (const char* name : {"tiny", "small"}) {
    const ModelConfig c = synthetic_config(name);
    EXPECT_EQ(c.dim % 128, 0) << name;
    EXPECT_EQ(c.q_lora_rank % 128, 0) << name;
    EXPECT_EQ((c.o_groups * c.o_lora_rank) % 128, 0) << name;
    EXPECT_EQ(c.moe_inter_dim % 128, 0) << name;
    EXPECT_EQ(c.nope_head_dim() % 64, 0) << name;
    EXPECT_EQ(c.index_head_dim & (c.index_head_dim - 1), 0) << name;
  }
}

TEST(SyntheticConfig, UnknownNameIsRejected) {
  EXPECT_EQ(error_message([] { synthetic_config("huge"); }),
            "synthetic model 'huge' does not exist (expected synthetic:tiny or synthetic:small)");
}

TEST(SyntheticWeights, SameSeedGivesSameBits) {
  const ModelConfig config = test::micro_config();
  test::expect_same_weights(config, synthetic_weights(config, 11), synthetic_weights(config, 11));
}

TEST(SyntheticWeights, DifferentSeedsGiveDifferentWeights) {
  const ModelConfig config = test::micro_config();
  EXPECT_NE(synthetic_weights(config, 1).blocks[0].attn.wq_a.values,
            synthetic_weights(config, 2).blocks[0].attn.wq_a.values);
}

// Pins the generator: a change here changes every synthetic model (and every fixture made
// from one), so it must be deliberate.
TEST(SyntheticWeights, FirstQueryProjectionIsPinned) {
  const ModelWeights w = synthetic_weights(test::micro_config(), kSyntheticSeed);
  const LinearWeight& wq_a = w.blocks[0].attn.wq_a;
  EXPECT_EQ(fnv1a(wq_a.scales, fnv1a(wq_a.values)), 0xd1464574e5ec53e9ull);
}

TEST(SyntheticWeights, UseTheOfficialFormats) {
  const ModelWeights w = synthetic_weights(test::micro_config(), 3);
  const BlockWeights& csa = w.blocks[2];
  EXPECT_EQ(w.embed.format, WeightFormat::kBF16);
  EXPECT_EQ(w.head.format, WeightFormat::kBF16);
  EXPECT_EQ(csa.attn.wq_a.format, WeightFormat::kFp8);
  EXPECT_EQ(csa.attn.wo_a.format, WeightFormat::kBF16);
  EXPECT_EQ(csa.attn.compressor->wkv.format, WeightFormat::kBF16);
  EXPECT_EQ(csa.attn.indexer->wq_b.format, WeightFormat::kFp8);
  EXPECT_EQ(csa.attn.indexer->weights_proj.format, WeightFormat::kBF16);
  EXPECT_EQ(csa.ffn.experts[0].w2.format, WeightFormat::kFp4);
  EXPECT_EQ(csa.ffn.shared.w2.format, WeightFormat::kFp8);
  EXPECT_EQ(w.mtp.at(0).e_proj.format, WeightFormat::kFp8);
}

TEST(SyntheticWeights, ScalesArePowersOfTwo) {
  const ModelWeights w = synthetic_weights(test::micro_config(), 3);
  for (const LinearWeight* linear : {&w.blocks[3].attn.wo_b, &w.blocks[3].ffn.experts[1].w1}) {
    ASSERT_FALSE(linear->scales.empty());
    for (const float s : linear->scales) {
      int exponent;
      EXPECT_EQ(std::frexp(s, &exponent), 0.5f) << s;
    }
  }
}

TEST(SyntheticWeights, LinearsKeepUnitGain) {
  const ModelWeights w = synthetic_weights(test::micro_config(), 3);
  const LinearWeight& wkv = w.blocks[1].attn.wkv;
  std::vector<float> dequantized;
  for (int64_t r = 0; r < wkv.rows; ++r) {
    for (int64_t c = 0; c < wkv.cols; ++c) dequantized.push_back(wkv.dequantized(r, c));
  }
  EXPECT_NEAR(standard_deviation(dequantized) * std::sqrt(double(wkv.cols)), 1.0, 0.05);
}

TEST(SyntheticWeights, HashRoutingPicksDistinctExperts) {
  const ModelConfig config = test::micro_config();
  const ModelWeights w = synthetic_weights(config, 3);
  const std::vector<int32_t>& table = w.blocks[0].ffn.tid2eid;
  ASSERT_EQ(table.size(), size_t(config.vocab_size * config.n_activated_experts));
  for (int64_t token = 0; token < config.vocab_size; ++token) {
    std::set<int32_t> experts;
    for (int64_t j = 0; j < config.n_activated_experts; ++j) {
      const int32_t e = table[size_t(token * config.n_activated_experts + j)];
      EXPECT_GE(e, 0);
      EXPECT_LT(e, config.n_routed_experts);
      experts.insert(e);
    }
    EXPECT_EQ(experts.size(), size_t(config.n_activated_experts)) << token;
  }
}

TEST(SyntheticWeights, OnlyHashLayersHaveExpertTablesAndOnlyScoreLayersHaveBiases) {
  const ModelConfig config = test::micro_config();
  const ModelWeights w = synthetic_weights(config, 3);
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    EXPECT_EQ(w.blocks[i].ffn.tid2eid.empty(), !config.layers[i].hash_routing) << i;
    EXPECT_EQ(w.blocks[i].ffn.gate_bias.empty(), config.layers[i].hash_routing) << i;
  }
}

TEST(SyntheticModels, TinyParameterCount) {
  const ModelConfig config = synthetic_config("tiny");
  const int64_t count = parameter_count(config, empty_weights(config, config.n_mtp_layers));
  std::printf("synthetic:tiny has %lld parameters\n", static_cast<long long>(count));
  EXPECT_GT(count, 2 * config.vocab_size * config.dim);
  EXPECT_LT(count, 80'000'000);
}

TEST(SyntheticModels, SmallHasAboutAHundredMillionParameters) {
  const ModelConfig config = synthetic_config("small");
  const int64_t count = parameter_count(config, empty_weights(config, config.n_mtp_layers));
  std::printf("synthetic:small has %lld parameters\n", static_cast<long long>(count));
  EXPECT_GT(count, 90'000'000);
  EXPECT_LT(count, 120'000'000);
}

TEST(SyntheticModels, LoadModelSaysTheWeightsAreRandom) {
  const LoadedModel model = load_model("synthetic:tiny");
  EXPECT_NE(model.description.find("synthetic:tiny: RANDOM weights"), std::string::npos)
      << model.description;
  EXPECT_EQ(model.weights.embed.rows, 129280);
  EXPECT_EQ(model.weights.blocks.size(), 6u);
  EXPECT_EQ(model.weights.mtp.size(), 1u);
}

TEST(SyntheticModels, InspectSaysTheWeightsAreRandom) {
  const std::string text = inspect_model("synthetic:small");
  EXPECT_NE(text.find("synthetic:small"), std::string::npos) << text;
  EXPECT_NE(text.find("RANDOM"), std::string::npos) << text;
}

TEST(SyntheticModels, UnknownSyntheticSpecIsNamed) {
  const std::string message = error_message([] { load_model("synthetic:medium"); });
  EXPECT_NE(message.find("synthetic model 'medium' does not exist"), std::string::npos) << message;
}

}  // namespace
}  // namespace dsv4
