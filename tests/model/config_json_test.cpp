#include <gtest/gtest.h>

#include "model/config_json.h"
#include "model/synthetic.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using test::error_message;

TEST(ConfigJson, OfficialSpellingRoundTrips) {
  const ModelConfig config = synthetic_config("tiny");
  test::expect_same_config(
      parse_config(config_to_json(config, CheckpointLayout::kOfficial), "official.json"), config);
}

TEST(ConfigJson, TransformersSpellingRoundTrips) {
  const ModelConfig config = synthetic_config("small");
  test::expect_same_config(
      parse_config(config_to_json(config, CheckpointLayout::kTransformers), "tf.json"), config);
}

TEST(ConfigJson, ProPresetRoundTripsInBothSpellings) {
  const ModelConfig config = preset_config("pro");
  for (const CheckpointLayout layout :
       {CheckpointLayout::kOfficial, CheckpointLayout::kTransformers}) {
    test::expect_same_config(parse_config(config_to_json(config, layout), "c.json"), config);
  }
}

TEST(ConfigJson, OfficialSpellingCannotSayCsaAtAnotherRatio) {
  ModelConfig config = synthetic_config("tiny");
  config.layers[2].compress_ratio = 8;
  const std::string message =
      error_message([&] { config_to_json(config, CheckpointLayout::kOfficial); });
  EXPECT_EQ(
      message,
      "synthetic:tiny: layer 2 is csa at ratio 8; the official config keys tie CSA to ratio 4");
}

TEST(ConfigJson, OfficialSpellingNeedsHashLayersFirst) {
  ModelConfig config = synthetic_config("tiny");
  config.layers[5].hash_routing = true;
  const std::string message =
      error_message([&] { config_to_json(config, CheckpointLayout::kOfficial); });
  EXPECT_NE(message.find("layer 5 is hash-routed after a score-routed layer"), std::string::npos)
      << message;
}

TEST(ConfigJson, TransformersSpellingNeedsOneRatioPerKind) {
  ModelConfig config = synthetic_config("tiny");
  config.layers[3].compress_ratio = 32;
  const std::string message =
      error_message([&] { config_to_json(config, CheckpointLayout::kTransformers); });
  EXPECT_NE(
      message.find("layer 5 has ratio 16 but another heavily_compressed_attention layer has 32"),
      std::string::npos)
      << message;
}

}  // namespace
}  // namespace dsv4
