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

// A first block of 64 rows a = (0.3, 1) (score 0.3), then b = (2, -11.5) (score 2); q = (1, 0),
// sink 0. The first block's probabilities are rounded at its own maximum 0.3 (bf16(1) = 1) and
// rescaled in fp32 by e^-1.7 when b raises the maximum, so
//   o[1] = (64·e^-1.7 − 11.5) / (64·e^-1.7 + 1 + e^-2) = 0.014949;
// rounding them at the final maximum instead (bf16(e^-1.7) = 0.18261719) would give 0.014617.
std::vector<const float*> block_then_peak(const std::vector<float>& a, const std::vector<float>& b,
                                          int a_rows, int masked_rows) {
  std::vector<const float*> rows(size_t(a_rows), a.data());
  rows.resize(rows.size() + size_t(masked_rows), nullptr);
  rows.push_back(b.data());
  return rows;
}

double expected_after_peak(int a_rows) {
  const double r = std::exp(-1.7);
  return (a_rows * r - 11.5) / (a_rows * r + 1.0 + std::exp(-2.0));
}

const std::vector<float> kBlockRow{0.3f, 1.0f}, kPeakRow{2.0f, -11.5f};

TEST(AttendHead, EachBlockRoundsProbabilitiesAtItsRunningMaximum) {
  std::vector<float> out(2);
  attend_head(kQuery.data(), block_then_peak(kBlockRow, kPeakRow, 64, 0), 2, 1.0f, 0.0f,
              Numerics::kOfficial, out.data());
  EXPECT_NEAR(out[1], expected_after_peak(64), 1e-4);
}

TEST(AttendHead, MaskedEntriesKeepTheirPlaceInTheBlocks) {
  // 63 rows a and a masked entry fill the first block, so b starts the second one.
  std::vector<float> out(2);
  attend_head(kQuery.data(), block_then_peak(kBlockRow, kPeakRow, 63, 1), 2, 1.0f, 0.0f,
              Numerics::kOfficial, out.data());
  EXPECT_NEAR(out[1], expected_after_peak(63), 1e-4);
}

TEST(AttendHead, BlocksOfMaskedEntriesChangeNothing) {
  std::vector<float> with_gap(2), without(2);
  attend_head(kQuery.data(), block_then_peak(kBlockRow, kPeakRow, 64, 128), 2, 1.0f, 0.5f,
              Numerics::kOfficial, with_gap.data());
  attend_head(kQuery.data(), block_then_peak(kBlockRow, kPeakRow, 64, 0), 2, 1.0f, 0.5f,
              Numerics::kOfficial, without.data());
  EXPECT_EQ(with_gap, without);
}

}  // namespace
}  // namespace dsv4::cpu
