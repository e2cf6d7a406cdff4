// The committed golden fixtures (tests/data/golden, written by tools/gen_reference.py from
// transformers' own save_pretrained and DeepSeek's converter layout) must load in both layouts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

std::vector<std::filesystem::path> golden_cases() {
  std::vector<std::filesystem::path> cases;
  const std::filesystem::path root = std::filesystem::path(DSV4_TEST_DATA_DIR) / "golden";
  if (!std::filesystem::is_directory(root)) return cases;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (std::filesystem::is_directory(entry.path() / "hf")) cases.push_back(entry.path());
  }
  return cases;
}

TEST(GoldenCheckpoints, BothLayoutsLoadWithoutWarnings) {
  const auto cases = golden_cases();
  if (cases.empty()) GTEST_SKIP() << "no golden fixtures in " << DSV4_TEST_DATA_DIR;
  for (const auto& dir : cases) {
    for (const char* layout : {"hf", "official"}) {
      const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir / layout));
      EXPECT_TRUE(loaded.warnings.empty()) << dir / layout << ": " << loaded.warnings.front();
      EXPECT_FALSE(loaded.weights.blocks.empty()) << dir / layout;
    }
  }
}

TEST(GoldenCheckpoints, AllThreeConfigSpellingsAgree) {
  const auto cases = golden_cases();
  if (cases.empty()) GTEST_SKIP() << "no golden fixtures in " << DSV4_TEST_DATA_DIR;
  for (const auto& dir : cases) {
    SCOPED_TRACE(dir.string());
    const ModelConfig transformers = load_config(dir / "hf");
    const ModelConfig huggingface = load_config(dir / "official");
    std::ifstream inference_file(dir / "official" / "inference" / "config.json");
    ModelConfig official = parse_config(nlohmann::json::parse(inference_file), "inference");
    // The inference spelling has no context length; it is a runtime choice there.
    official.max_seq_len = transformers.max_seq_len;
    test::expect_same_config(huggingface, transformers);
    test::expect_same_config(official, transformers);
  }
}

TEST(GoldenCheckpoints, LayoutsCarryTheirOwnFormats) {
  const auto cases = golden_cases();
  if (cases.empty()) GTEST_SKIP() << "no golden fixtures in " << DSV4_TEST_DATA_DIR;
  const std::filesystem::path dir = cases.front();
  const ModelWeights hf = load_checkpoint_weights(open_checkpoint(dir / "hf")).weights;
  const ModelWeights official = load_checkpoint_weights(open_checkpoint(dir / "official")).weights;
  EXPECT_EQ(hf.blocks[0].attn.wq_a.format, WeightFormat::kBF16);
  EXPECT_EQ(official.blocks[0].attn.wq_a.format, WeightFormat::kFp8);
  EXPECT_EQ(hf.blocks[0].ffn.experts[0].w1.format, WeightFormat::kBF16);
  EXPECT_EQ(official.blocks[0].ffn.experts[0].w1.format, WeightFormat::kFp4);
}

}  // namespace
}  // namespace dsv4
