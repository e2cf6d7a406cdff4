#include <gtest/gtest.h>

#include <algorithm>

#include "model/checkpoint.h"
#include "model/checkpoint_writer.h"
#include "model/model_source.h"
#include "model/synthetic.h"
#include "model_test_support.h"
#include "model_variants.h"

namespace dsv4 {
namespace {

using test::EditableTensor;
using test::error_message;

// One micro model written once, shared by the tests that only read it.
class CheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    config_ = new ModelConfig(test::micro_config());
    weights_ = new ModelWeights(synthetic_weights(*config_, 7));
  }
  static void TearDownTestSuite() {
    delete weights_;
    delete config_;
  }

  // Writes the micro model into the test's directory in `layout`.
  void write(CheckpointLayout layout, int64_t shards = 1) {
    write_checkpoint(dir_.path(), *config_, *weights_, layout, shards);
  }
  std::filesystem::path file() const { return dir_ / "model.safetensors"; }

  static ModelConfig* config_;
  static ModelWeights* weights_;
  test::TempDir dir_;
};

ModelConfig* CheckpointTest::config_ = nullptr;
ModelWeights* CheckpointTest::weights_ = nullptr;

TEST_F(CheckpointTest, OfficialLayoutLoadsBackUnchanged) {
  write(CheckpointLayout::kOfficial);
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  test::expect_same_weights(*config_, loaded.weights, *weights_);
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST_F(CheckpointTest, TransformersLayoutLoadsIntoTheSameWeights) {
  write(CheckpointLayout::kTransformers);
  const Checkpoint checkpoint = open_checkpoint(dir_.path());
  EXPECT_EQ(checkpoint.layout, CheckpointLayout::kTransformers);
  test::expect_same_config(checkpoint.config, *config_);
  const CheckpointWeights loaded = load_checkpoint_weights(checkpoint);
  test::expect_same_weights(*config_, loaded.weights, *weights_);
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST_F(CheckpointTest, TransformersLayoutUsesTransformersNames) {
  write(CheckpointLayout::kTransformers);
  const TensorStore store = TensorStore::open_directory(dir_.path());
  for (const char* name :
       {"model.embed_tokens.weight", "head.weight", "model.norm.weight", "model.hc_head.hc_fn",
        "model.layers.0.attn.norm.weight", "model.layers.2.attn.compressor.norm.weight",
        "model.layers.2.attn.indexer.compressor.norm.weight", "model.layers.0.ffn.gate.tid2eid",
        "model.layers.3.ffn.experts.1.w2.weight", "model.layers.3.ffn.experts.1.w2.scale"}) {
    EXPECT_NE(store.find(name), nullptr) << name;
  }
  EXPECT_EQ(store.find("embed.weight"), nullptr);
}

TEST_F(CheckpointTest, ShardedCheckpointLoadsBackUnchanged) {
  write(CheckpointLayout::kOfficial, 3);
  const Checkpoint checkpoint = open_checkpoint(dir_.path());
  EXPECT_EQ(checkpoint.store.files().size(), 3u);
  test::expect_same_weights(*config_, load_checkpoint_weights(checkpoint).weights, *weights_);
}

TEST_F(CheckpointTest, PlainFloatCheckpointLoadsAsF32) {
  ModelWeights plain = *weights_;
  visit_tensors(
      *config_, plain,
      [](const std::string&, TensorRole, const std::vector<int64_t>&, auto& field) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(field)>, LinearWeight>) {
          std::vector<float> exact(field.values.size());
          for (int64_t r = 0; r < field.rows; ++r) {
            for (int64_t c = 0; c < field.cols; ++c) {
              exact[size_t(r * field.cols + c)] = field.dequantized(r, c);
            }
          }
          field = LinearWeight{field.rows, field.cols, WeightFormat::kF32, exact, {}};
        }
      });
  write_checkpoint(dir_.path(), *config_, plain, CheckpointLayout::kTransformers);
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  test::expect_same_weights(*config_, loaded.weights, plain);
  EXPECT_EQ(loaded.weights.blocks[0].attn.wq_a.format, WeightFormat::kF32);
}

TEST_F(CheckpointTest, MissingTensorNamesDirectoryAndTensor) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(file(),
                            [](EditableTensor& t) { return t.name != "layers.3.attn.wkv.weight"; });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_EQ(message, dir_.path().string() +
                         ": missing tensor 'layers.3.attn.wkv.weight' (FP8 linear [128, 256])");
}

TEST_F(CheckpointTest, MissingTensorIsNamedInTheCheckpointsLayout) {
  write(CheckpointLayout::kTransformers);
  test::rewrite_safetensors(
      file(), [](EditableTensor& t) { return t.name != "model.layers.1.attn.norm.weight"; });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_NE(message.find("missing tensor 'model.layers.1.attn.norm.weight'"), std::string::npos)
      << message;
}

TEST_F(CheckpointTest, MissingBlockScaleIsNamed) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(
      file(), [](EditableTensor& t) { return t.name != "layers.2.ffn.experts.0.w1.scale"; });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_NE(message.find("missing tensor 'layers.2.ffn.experts.0.w1.scale' (block scales of the I8 "
                         "tensor 'layers.2.ffn.experts.0.w1.weight')"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointTest, Nvfp4ExpertsLoadBackUnchangedAndTheirInputScalesAreIgnored) {
  const ModelWeights nvfp4 = testing::with_nvfp4_experts(*weights_);
  write_checkpoint(dir_.path(), *config_, nvfp4, CheckpointLayout::kOfficial, 1);
  // ModelOpt also stores a static activation scale per linear; the engine quantizes
  // activations the official way and does not use it.
  test::rewrite_safetensors(
      file(), [](EditableTensor&) { return true; },
      [](SafetensorsWriter& w) {
        w.add_f32("layers.2.ffn.experts.0.w1.input_scale", {}, std::vector<float>{0.01f});
      });
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  test::expect_same_weights(*config_, loaded.weights, nvfp4);
  EXPECT_TRUE(loaded.warnings.empty());
  const LinearWeight& a = loaded.weights.blocks[2].ffn.experts[0].w1;
  const LinearWeight& b = weights_->blocks[2].ffn.experts[0].w1;
  EXPECT_EQ(a.format, WeightFormat::kNvFp4);
  for (int64_t c = 0; c < a.cols; ++c) EXPECT_EQ(a.dequantized(1, c), b.dequantized(1, c)) << c;
}

TEST_F(CheckpointTest, Nvfp4ExpertWithoutGlobalScaleIsNamed) {
  write_checkpoint(dir_.path(), *config_, testing::with_nvfp4_experts(*weights_),
                   CheckpointLayout::kOfficial, 1);
  test::rewrite_safetensors(file(), [](EditableTensor& t) {
    return t.name != "layers.3.ffn.experts.1.w2.weight_scale_2";
  });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_NE(message.find("missing tensor 'layers.3.ffn.experts.1.w2.weight_scale_2' (global scale "
                         "of the NVFP4 tensor 'layers.3.ffn.experts.1.w2.weight')"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointTest, WrongDtypeNamesFileTensorAndAllowedDtypes) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(file(), [](EditableTensor& t) {
    if (t.name == "layers.1.attn.q_norm.weight") t.dtype = DType::kF16;
    return true;
  });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_EQ(message, file().string() +
                         ": tensor 'layers.1.attn.q_norm.weight' has dtype F16; a norm weight must "
                         "be one of BF16, F32");
}

TEST_F(CheckpointTest, WrongShapeNamesFileTensorExpectedAndActual) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(file(), [](EditableTensor& t) {
    if (t.name == "layers.4.attn.wo_a.weight") t.shape = {256, 128};
    return true;
  });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_EQ(message, file().string() +
                         ": tensor 'layers.4.attn.wo_a.weight' has shape [256, 128], expected "
                         "[128, 256] (BF16 wo_a linear)");
}

TEST_F(CheckpointTest, ConfigThatDisagreesWithTheTensorsIsCaughtByShape) {
  ModelConfig wider = *config_;
  wider.moe_inter_dim = 256;
  write_checkpoint(dir_.path(), wider, *weights_, CheckpointLayout::kOfficial);
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_NE(message.find("tensor 'layers.0.ffn.experts.0.w1.weight' has shape [128, 128], "
                         "expected [256, 128] (I8 packed FP4)"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointTest, UnexpectedTensorIsAWarning) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(
      file(), [](EditableTensor&) { return true; },
      [](SafetensorsWriter& w) { w.add_f32("layers.0.attn.extra", {1}, std::vector<float>{1}); });
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_EQ(loaded.warnings[0],
            file().string() + ": tensor 'layers.0.attn.extra' is not used by this config");
}

TEST_F(CheckpointTest, AbsentMtpIsSkipped) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(file(), [](EditableTensor& t) { return !t.name.starts_with("mtp."); });
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  EXPECT_TRUE(loaded.weights.mtp.empty());
  EXPECT_EQ(loaded.weights.blocks.size(), 6u);
}

TEST_F(CheckpointTest, MtpWeightsAreLoadedWhenPresent) {
  write(CheckpointLayout::kOfficial);
  const CheckpointWeights loaded = load_checkpoint_weights(open_checkpoint(dir_.path()));
  ASSERT_EQ(loaded.weights.mtp.size(), 1u);
  EXPECT_EQ(loaded.weights.mtp[0].e_proj.format, WeightFormat::kFp8);
  EXPECT_EQ(loaded.weights.mtp[0].hc_head.fn.size(), size_t(4 * 4 * 256));
}

TEST_F(CheckpointTest, IncompleteMtpIsAnError) {
  write(CheckpointLayout::kOfficial);
  test::rewrite_safetensors(file(),
                            [](EditableTensor& t) { return t.name != "mtp.0.hnorm.weight"; });
  const std::string message =
      error_message([&] { load_checkpoint_weights(open_checkpoint(dir_.path())); });
  EXPECT_NE(message.find("missing tensor 'mtp.0.hnorm.weight'"), std::string::npos) << message;
}

TEST_F(CheckpointTest, MissingConfigJsonIsReported) {
  write(CheckpointLayout::kOfficial);
  std::filesystem::remove(dir_ / "config.json");
  const std::string message = error_message([&] { open_checkpoint(dir_.path()); });
  EXPECT_NE(message.find(dir_.path().string() + ": no config.json"), std::string::npos) << message;
}

TEST_F(CheckpointTest, TruncatedShardIsReported) {
  write(CheckpointLayout::kOfficial);
  std::filesystem::resize_file(file(), std::filesystem::file_size(file()) / 2);
  const std::string message = error_message([&] { open_checkpoint(dir_.path()); });
  EXPECT_NE(message.find(file().string() + ": tensor '"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated file?"), std::string::npos) << message;
}

TEST(Checkpoint, MissingDirectoryIsReported) {
  EXPECT_EQ(error_message([] { open_checkpoint("/nonexistent/dsv4-model"); }),
            "/nonexistent/dsv4-model: model directory does not exist");
}

TEST_F(CheckpointTest, InspectSummarisesWithoutDecoding) {
  write(CheckpointLayout::kOfficial, 2);
  const std::string text = inspect_checkpoint(dir_.path());
  EXPECT_NE(text.find("DeepSeek-V4 config from"), std::string::npos) << text;
  EXPECT_NE(text.find("(official layout), 2 files"), std::string::npos) << text;
  EXPECT_NE(text.find(" F8_E4M3 "), std::string::npos) << text;
  EXPECT_NE(text.find(" I8 "), std::string::npos) << text;
  EXPECT_NE(text.find("in 1 of 1 MTP blocks"), std::string::npos) << text;
  EXPECT_NE(text.find("decoded weights in memory"), std::string::npos) << text;
}

TEST_F(CheckpointTest, LoadModelFromDirectoryDescribesTheCheckpoint) {
  write(CheckpointLayout::kTransformers);
  const LoadedModel model = load_model(dir_.path().string());
  EXPECT_NE(model.description.find("transformers checkpoint layout"), std::string::npos)
      << model.description;
  EXPECT_EQ(model.description.find("RANDOM"), std::string::npos) << model.description;
  test::expect_same_weights(*config_, model.weights, *weights_);
}

}  // namespace
}  // namespace dsv4
