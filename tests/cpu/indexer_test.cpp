#include <gtest/gtest.h>

#include <vector>

#include "cpu/indexer.h"

namespace dsv4::cpu {
namespace {

// One head, 1-dim keys: score[s] = w · relu(q · k_s).
TEST(IndexerSelect, KeepsTheTopScoresInDescendingScoreOrder) {
  const float q = 1.0f, w = 1.0f;
  const std::vector<float> keys{0.5f, 2.0f, -2.0f, 3.0f, 1.0f};
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 5, 3, Numerics::kFp32),
            (std::vector<int64_t>{3, 1, 4}));
}

TEST(IndexerSelect, SeesOnlyTheVisibleEntries) {
  const float q = 1.0f, w = 1.0f;
  const std::vector<float> keys{0.5f, 1.0f, 9.0f};
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 2, 1, Numerics::kFp32),
            (std::vector<int64_t>{1}));
}

TEST(IndexerSelect, KeepsEveryVisibleEntryWhenTopkExceedsThem) {
  const float q = 1.0f, w = 1.0f;
  const std::vector<float> keys{-1.0f, 2.0f, 1.0f};
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 3, 8, Numerics::kFp32),
            (std::vector<int64_t>{1, 2, 0}));
}

TEST(IndexerSelect, BreaksTiesTowardsTheLowerIndex) {
  // ReLU makes every negative score exactly zero: a four-way tie for two places.
  const float q = 1.0f, w = 1.0f;
  const std::vector<float> keys{-1.0f, -2.0f, -3.0f, -4.0f};
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 4, 2, Numerics::kFp32),
            (std::vector<int64_t>{0, 1}));
}

TEST(IndexerSelect, OfficialRoundsTheScoresToBf16BeforeRanking) {
  // 1 + 2^-9 and 1 differ in fp32 but are equal in bf16, so the tie goes to index 0.
  const float q = 1.0f, w = 1.0f;
  const std::vector<float> keys{1.0f, 1.0f + 0x1p-9f};
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 2, 1, Numerics::kOfficial),
            (std::vector<int64_t>{0}));
  EXPECT_EQ(indexer_select(&q, &w, 1, 1, keys.data(), 2, 1, Numerics::kFp32),
            (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace dsv4::cpu
