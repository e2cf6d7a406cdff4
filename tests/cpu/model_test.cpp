// Whole-model properties of the CPU backend on the embedded synthetic model (every layer
// type, FP8/FP4 weights): official numerics are deterministic per token, so the call pattern
// and batching must not change a single bit.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "cpu/chunked_run.h"
#include "model/model_source.h"
#include "model_variants.h"

namespace dsv4::cpu {
namespace {

const LoadedModel& tiny() {
  static const LoadedModel model = load_model("synthetic:tiny");
  return model;
}

// 150 ids: past the window (32), 37 CSA entries (top-16 selects), 9 HCA entries.
std::vector<int32_t> prompt_ids(size_t n, int32_t salt) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = int32_t((i * 7919 + size_t(salt) * 104729) % 129280);
  return ids;
}

TEST(CpuModel, OfficialDecodeAfterPrefillEqualsOneLongPrefillBitForBit) {
  Model model(tiny().config, tiny().weights, Numerics::kOfficial);
  const std::vector<int32_t> ids = prompt_ids(150, 1);
  const std::vector<float> one_prefill = run_chunked(model, ids, {150});
  const std::vector<float> prefill_then_decode = run_chunked(model, ids, {120});
  const std::vector<float> odd_chunks = run_chunked(model, ids, {13, 29, 1, 70});
  ASSERT_EQ(one_prefill.size(), prefill_then_decode.size());
  EXPECT_EQ(one_prefill, prefill_then_decode);
  EXPECT_EQ(one_prefill, odd_chunks);
}

TEST(CpuModel, BatchingSequencesTogetherChangesNoLogit) {
  Model model(tiny().config, tiny().weights, Numerics::kOfficial);
  const std::vector<int32_t> a = prompt_ids(40, 2), b = prompt_ids(70, 3);
  const std::vector<float> alone_a = run_chunked(model, a, {40});
  const std::vector<float> alone_b = run_chunked(model, b, {70});
  auto sa = model.new_sequence(), sb = model.new_sequence();
  const Model::Chunk chunks[] = {{sa.get(), a}, {sb.get(), b}};
  const std::vector<float> together = model.forward(chunks);
  const size_t split = alone_a.size();
  EXPECT_EQ(std::vector<float>(together.begin(), together.begin() + std::ptrdiff_t(split)),
            alone_a);
  EXPECT_EQ(std::vector<float>(together.begin() + std::ptrdiff_t(split), together.end()), alone_b);
}

TEST(CpuModel, OfficialNumericsStayCloseToFp32ButNotEqual) {
  const std::vector<int32_t> ids = prompt_ids(150, 4);
  Model official(tiny().config, tiny().weights, Numerics::kOfficial);
  Model exact(tiny().config, tiny().weights, Numerics::kFp32);
  const std::vector<float> a = run_chunked(official, ids, {150});
  const std::vector<float> b = run_chunked(exact, ids, {150});
  const auto vocab = size_t(tiny().config.vocab_size);
  double worst = 0.0, sum = 0.0;
  for (size_t p = 0; p < ids.size(); ++p) {
    double diff = 0.0, norm = 0.0;
    for (size_t v = 0; v < vocab; ++v) {
      const double d = double(a[p * vocab + v]) - double(b[p * vocab + v]);
      diff += d * d;
      norm += double(b[p * vocab + v]) * double(b[p * vocab + v]);
    }
    const double relative = std::sqrt(diff / norm);
    worst = std::max(worst, relative);
    sum += relative;
  }
  RecordProperty("official_vs_fp32_mean_relative_l2", std::to_string(sum / double(ids.size())));
  RecordProperty("official_vs_fp32_worst_relative_l2", std::to_string(worst));
  std::printf("official vs fp32 on synthetic:tiny: mean relative L2 %.3e, worst %.3e\n",
              sum / double(ids.size()), worst);
  // The FP8/FP4/bf16 rounding is really applied, and the result is still the same function:
  // a random 6-layer model amplifies rounding (routing and top-k flips), so the bound is loose,
  // but uncorrelated logits would sit near 1.4.
  EXPECT_GT(worst, 1e-4);
  EXPECT_LT(worst, 0.75);
}

TEST(CpuModel, Nvfp4ExpertsGiveTheFp32LogitsOfTheirMxfp4Originals) {
  // Same dequantized expert weights; only the partial sums are split at 16 instead of 32
  // inputs, so fp32 logits agree to rounding. (Official numerics are not compared: a changed
  // summation order flips FP8/bf16 roundings, see summation_order_test.)
  const std::vector<int32_t> ids = prompt_ids(60, 5);
  Model mxfp4(tiny().config, tiny().weights, Numerics::kFp32);
  const ModelWeights nvfp4_weights = testing::with_nvfp4_experts(tiny().weights);
  Model nvfp4(tiny().config, nvfp4_weights, Numerics::kFp32);
  const std::vector<float> a = run_chunked(mxfp4, ids, {60});
  const std::vector<float> b = run_chunked(nvfp4, ids, {60});
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    norm += double(a[i]) * double(a[i]);
  }
  EXPECT_NE(a, b) << "the NVFP4 path was not taken";
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

TEST(CpuModel, OfficialNumericsRejectAnIndexerDimTheHadamardCannotTake) {
  ModelConfig config = tiny().config;
  config.index_head_dim = 96;
  try {
    Model model(config, tiny().weights, Numerics::kOfficial);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index_head_dim (96) to be a power of two"),
              std::string::npos)
        << e.what();
  }
}

TEST(CpuModel, RejectsTokenIdsOutsideTheVocabulary) {
  Model model(tiny().config, tiny().weights, Numerics::kOfficial);
  try {
    run_chunked(model, {5, 129280}, {2});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "token id 129280 is outside the vocabulary [0, 129280)");
  }
}

TEST(CpuModel, RejectsASequenceLongerThanTheMaximumContext) {
  Model model(tiny().config, tiny().weights, Numerics::kOfficial);
  const std::vector<int32_t> ids(size_t(tiny().config.max_seq_len + 1), 7);
  try {
    run_chunked(model, ids, {int32_t(ids.size())});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sequence too long"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv4::cpu
