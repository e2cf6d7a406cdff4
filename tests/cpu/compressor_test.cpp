#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/compressor.h"

namespace dsv4::cpu {
namespace {

// Ratio 2, entry width 1. Overlapping: each token projects two channels (a | b); entry w pools
// the previous window's a-channel and the current window's b-channel with a softmax over the
// four gate logits.
TEST(CompressorPush, OverlapPoolsPreviousAndCurrentWindows) {
  const CompressorShape shape{2, 1, true};
  CompressorWeights weights;
  weights.ape = {0.0f, 0.0f, 0.5f, -0.5f};  // [ratio, width]: slot 1 adds (0.5, -0.5)
  CompressorState state;
  float pooled = 0.0f;
  const float kv[4][2] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
  const float gate[4][2] = {{0, 0}, {0, 0}, {1, 0}, {0, 1}};
  EXPECT_FALSE(compressor_push(state, shape, weights, 0, kv[0], gate[0], &pooled));
  ASSERT_TRUE(compressor_push(state, shape, weights, 1, kv[1], gate[1], &pooled));
  // Window 0 has no predecessor: b-gates {0, -0.5} over values {2, 4}.
  const double w0 = 1.0 / (1.0 + std::exp(-0.5));
  EXPECT_NEAR(pooled, 2.0 * w0 + 4.0 * (1.0 - w0), 1e-6);

  EXPECT_FALSE(compressor_push(state, shape, weights, 2, kv[2], gate[2], &pooled));
  ASSERT_TRUE(compressor_push(state, shape, weights, 3, kv[3], gate[3], &pooled));
  // Previous a-slots: values {1, 3}, gates {0, 0.5}; current b-slots: values {6, 8},
  // gates {0, 1 - 0.5}.
  const double e[4] = {std::exp(0.0), std::exp(0.5), std::exp(0.0), std::exp(0.5)};
  const double sum = e[0] + e[1] + e[2] + e[3];
  EXPECT_NEAR(pooled, (1 * e[0] + 3 * e[1] + 6 * e[2] + 8 * e[3]) / sum, 1e-5);
}

TEST(CompressorPush, NonOverlappingWindowsPoolOnlyTheirOwnTokens) {
  const CompressorShape shape{2, 1, false};
  CompressorWeights weights;
  weights.ape = {0.0f, 0.0f};
  CompressorState state;
  float pooled = 0.0f;
  const float kv[4] = {1, 3, 10, 20}, gate[4] = {0, 0, 0, std::log(4.0f)};
  compressor_push(state, shape, weights, 0, &kv[0], &gate[0], &pooled);
  ASSERT_TRUE(compressor_push(state, shape, weights, 1, &kv[1], &gate[1], &pooled));
  EXPECT_NEAR(pooled, 2.0f, 1e-6f);
  compressor_push(state, shape, weights, 2, &kv[2], &gate[2], &pooled);
  ASSERT_TRUE(compressor_push(state, shape, weights, 3, &kv[3], &gate[3], &pooled));
  EXPECT_NEAR(pooled, 10.0f * 0.2f + 20.0f * 0.8f, 1e-5f);
}

}  // namespace
}  // namespace dsv4::cpu
