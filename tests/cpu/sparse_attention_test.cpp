#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/sparse_attention.h"

namespace dsv4::cpu {
namespace {

// q = (1, 0), keys k1 = (1, 0), k2 = (0, 1), scale 1, sink 0: scores {1, 0}, M = 1,
// e = {1, e^-1}, denominator 1 + e^-1 + e^(0-1).
const std::vector<float> kQuery{1.0f, 0.0f}, kRow1{1.0f, 0.0f}, kRow2{0.0f, 1.0f};

TEST(AttendHead, SinkEntersOnlyTheDenominator) {
  std::vector<float> out(2);
  attend_head(kQuery.data(), {kRow1.data(), kRow2.data()}, 2, 1.0f, 0.0f, Numerics::kFp32,
              out.data());
  const double denominator = 1.0 + 2.0 * std::exp(-1.0);
  EXPECT_NEAR(out[0], 1.0 / denominator, 1e-6);
  EXPECT_NEAR(out[1], std::exp(-1.0) / denominator, 1e-6);
}

TEST(AttendHead, OfficialWeighsValuesByBf16ProbabilitiesAndRoundsTheOutput) {
  // bf16(e^-1) = 188/512 = 0.3671875; outputs 0.57612 -> 147/256 and
  // 0.3671875 / 1.7357589 = 0.2115403 -> 217/1024.
  std::vector<float> out(2);
  attend_head(kQuery.data(), {kRow1.data(), kRow2.data()}, 2, 1.0f, 0.0f, Numerics::kOfficial,
              out.data());
  EXPECT_EQ(out[0], 147.0f / 256.0f);
  EXPECT_EQ(out[1], 217.0f / 1024.0f);
}

TEST(AttendHead, LargeSinkDrainsTheOutputTowardsZero) {
  std::vector<float> out(2);
  attend_head(kQuery.data(), {kRow1.data()}, 2, 1.0f, 30.0f, Numerics::kFp32, out.data());
  EXPECT_LT(std::fabs(out[0]), 1e-11f);
}

}  // namespace
}  // namespace dsv4::cpu
