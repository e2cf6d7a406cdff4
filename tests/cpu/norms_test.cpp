#include <gtest/gtest.h>

#include <vector>

#include "cpu/norms.h"

namespace dsv4::cpu {
namespace {

TEST(RmsNorm, OfficialRoundsTheFp32ResultOnceToBf16) {
  // mean(x²) = 12.5, rsqrt = 0.2828427; y = {0.8485281, 1.1313709}.
  // bf16 grid: 2^-8 in [0.5, 1) -> 217/256; 2^-7 in [1, 2) -> 145/128.
  const std::vector<float> x{3.0f, 4.0f}, weight{1.0f, 1.0f};
  std::vector<float> y(2);
  rms_norm(x.data(), 1, 2, weight.data(), 0.0, Numerics::kOfficial, y.data());
  EXPECT_EQ(y[0], 217.0f / 256.0f);
  EXPECT_EQ(y[1], 145.0f / 128.0f);
}

TEST(RmsNorm, Fp32KeepsFullPrecisionAndAppliesTheWeight) {
  const std::vector<float> x{3.0f, 4.0f}, weight{2.0f, 0.5f};
  std::vector<float> y(2);
  rms_norm(x.data(), 1, 2, weight.data(), 0.0, Numerics::kFp32, y.data());
  EXPECT_NEAR(y[0], 2.0f * 0.84852814f, 1e-6f);
  EXPECT_NEAR(y[1], 0.5f * 1.13137085f, 1e-6f);
}

TEST(UnweightedHeadNorm, OfficialRoundsEveryIntermediateToBf16) {
  // x² sums to 12, mean 3, +1e-6 rounds back to 3, rsqrt(3) = 0.57735 -> bf16 148/256;
  // 3 · 148/256 = 1.734375 (exact in bf16). The fp32 path would give 1.7320508.
  std::vector<float> x{1.0f, 1.0f, 1.0f, 3.0f};
  unweighted_head_norm(x.data(), 1, 4, 1e-6, Numerics::kOfficial);
  EXPECT_EQ(x[0], 148.0f / 256.0f);
  EXPECT_EQ(x[3], 1.734375f);
}

TEST(UnweightedHeadNorm, Fp32NormalisesEachRowToUnitRms) {
  std::vector<float> x{1.0f, 1.0f, 1.0f, 3.0f, 2.0f, 2.0f, 2.0f, 2.0f};
  unweighted_head_norm(x.data(), 2, 4, 0.0, Numerics::kFp32);
  EXPECT_NEAR(x[3], 1.7320508f, 1e-6f);
  EXPECT_NEAR(x[4], 1.0f, 1e-6f);
}

}  // namespace
}  // namespace dsv4::cpu
