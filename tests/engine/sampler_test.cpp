// dsv4::Sampler: greedy and nucleus choices, and its draws (one 53-bit uniform per token sampled
// at a temperature above 0, none when greedy), which the GPU sampler is handed to pick the same
// token.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/sampler.h"

namespace dsv4 {
namespace {

TEST(Sampler, GreedyTakesTheFirstLargestLogitAndNoDraw) {
  Sampler greedy({0.0f, 1.0f, 42}), fresh({0.0f, 1.0f, 42});
  const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(greedy.sample(logits), 1);
  EXPECT_EQ(greedy.next_uniform(), fresh.next_uniform());
}

TEST(Sampler, EachSampledTokenTakesOneDraw) {
  Sampler sampling({0.8f, 0.9f, 7}), fresh({0.8f, 0.9f, 7});
  const std::vector<float> logits{0.1f, 0.7f, 0.3f, -0.2f};
  sampling.sample(logits);
  fresh.next_uniform();
  EXPECT_EQ(sampling.next_uniform(), fresh.next_uniform());
}

TEST(Sampler, DrawsAreUniformInTheUnitInterval) {
  Sampler sampler({1.0f, 1.0f, 3});
  double sum = 0.0;
  for (int i = 0; i < 4000; ++i) {
    const double u = sampler.next_uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 4000.0, 0.5, 0.02);
}

// Probabilities 1/4 and 3/4 (logits 0 and ln 3 at temperature 1): the more probable token 1
// comes first, so a draw below 3/4 picks it and any other draw picks token 0.
TEST(Sampler, NucleusPicksTheTokenWhereTheDrawFalls) {
  const std::vector<float> logits{0.0f, std::log(3.0f)};
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Sampler sampler({1.0f, 1.0f, seed}), twin({1.0f, 1.0f, seed});
    const double u = twin.next_uniform();
    EXPECT_EQ(sampler.sample(logits), u < 0.75 ? 1 : 0) << "seed " << seed << ", draw " << u;
  }
}

// top_p 0.5 keeps only token 1 (its 3/4 reaches half the mass): every draw picks it.
TEST(Sampler, TopPLeavesOutTheTail) {
  const std::vector<float> logits{0.0f, std::log(3.0f)};
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Sampler sampler({1.0f, 0.5f, seed});
    EXPECT_EQ(sampler.sample(logits), 1) << "seed " << seed;
  }
}

}  // namespace
}  // namespace dsv4
