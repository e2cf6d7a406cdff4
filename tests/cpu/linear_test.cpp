#include <gtest/gtest.h>

#include <vector>

#include "cpu/linear.h"

namespace dsv4::cpu {
namespace {

// One output row, 256 inputs: two 128-wide blocks with weight scales 0.5 and 2, every FP8
// weight value 1.
LinearWeight two_block_fp8_row() {
  LinearWeight w;
  w.rows = 1;
  w.cols = 256;
  w.format = WeightFormat::kFp8;
  w.values.assign(256, 1.0f);
  w.scales = {0.5f, 2.0f};
  return w;
}

std::vector<float> two_block_input() {
  std::vector<float> x(256, 2.0f);
  std::fill(x.begin() + 128, x.end(), 0.3f);
  return x;
}

TEST(Linear, OfficialFp8ScalesEachBlockPartialByActivationAndWeightScales) {
  // Block 0: amax 2 -> s = 2^-7, q = 256; partial 128·256 = 32768, × 2^-7 × 0.5 = 128.
  // Block 1: amax 0.3 -> s = 2^-10, 0.3·1024 = 307.2 -> e4m3 320; 128·320 × 2^-10 × 2 = 80.
  const std::vector<float> x = two_block_input();
  float y = 0.0f;
  linear(x.data(), 1, two_block_fp8_row(), Numerics::kOfficial, &y);
  EXPECT_EQ(y, 208.0f);
}

TEST(Linear, Fp32UsesTheExactDequantizedProduct) {
  // 128·2·0.5 + 128·0.3·2 = 204.8
  const std::vector<float> x = two_block_input();
  float y = 0.0f;
  linear(x.data(), 1, two_block_fp8_row(), Numerics::kFp32, &y);
  EXPECT_NEAR(y, 204.8f, 1e-4f);
}

TEST(Linear, OfficialFp4ScalesEach32InputPartial) {
  // x = 1 everywhere: s = 2^-8, q = 256. Weight value 0.5, scales 1, 2, 4, 8 per 32 inputs:
  // Σ_b 32 · 256 · 0.5 · 2^-8 · s_b = 16 · 15 = 240.
  LinearWeight w;
  w.rows = 1;
  w.cols = 128;
  w.format = WeightFormat::kFp4;
  w.values.assign(128, 0.5f);
  w.scales = {1.0f, 2.0f, 4.0f, 8.0f};
  const std::vector<float> x(128, 1.0f);
  float y = 0.0f;
  linear(x.data(), 1, w, Numerics::kOfficial, &y);
  EXPECT_EQ(y, 240.0f);
}

TEST(Linear, OfficialNvFp4ScalesEach16InputPartialThenAppliesTheGlobalScale) {
  // x = 1 everywhere: s = 2^-8, q = 256. Weight value 0.5, e4m3 scales per 16 inputs
  // 1, 1.5, 2, 3, 0.5, 0.75, 4, 6: Σ_b 16 · 256 · 0.5 · 2^-8 · s_b = 8 · 18.75 = 150; global 0.25.
  LinearWeight w;
  w.rows = 1;
  w.cols = 128;
  w.format = WeightFormat::kNvFp4;
  w.values.assign(128, 0.5f);
  w.scales = {1.0f, 1.5f, 2.0f, 3.0f, 0.5f, 0.75f, 4.0f, 6.0f};
  w.global_scale = 0.25f;
  const std::vector<float> x(128, 1.0f);
  float y = 0.0f;
  linear(x.data(), 1, w, Numerics::kOfficial, &y);
  EXPECT_EQ(y, 37.5f);
  EXPECT_EQ(w.dequantized(0, 17), 0.5f * 1.5f * 0.25f);
}

TEST(GroupedLinear, EachGroupMeetsOnlyItsOwnInputSlice) {
  // Two groups of 2 inputs, one output row per group: y0 = x0·1 + x1·2, y1 = x2·3 + x3·4.
  LinearWeight w;
  w.rows = 2;
  w.cols = 2;
  w.format = WeightFormat::kBF16;
  w.values = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<float> x{1.0f, 1.0f, 10.0f, 100.0f};
  std::vector<float> y(2);
  grouped_linear(x.data(), 1, 2, w, y.data());
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], 430.0f);
}

}  // namespace
}  // namespace dsv4::cpu
