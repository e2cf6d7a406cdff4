// How far two equally valid fp32 summation orders (dot forward and reverse) drift apart in the
// CPU model: the floor that any second implementation, like the GPU backend, is held against
// (tests/cuda/model/cuda_model_test.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "cpu/linear.h"
#include "cpu/model.h"
#include "logit_comparison.h"
#include "model/model_source.h"
#include "model_variants.h"

namespace dsv4::cpu {
namespace {

using dsv4::testing::LogitComparison;
using dsv4::testing::random_token_ids;
using dsv4::testing::synthetic_tiny;

std::vector<float> prefill(const LoadedModel& m, const std::vector<int32_t>& ids, Numerics numerics,
                           SummationOrder order) {
  set_summation_order(order);
  Model model(m.config, m.weights, numerics);
  auto seq = model.new_sequence();
  const Model::Chunk chunk{seq.get(), ids};
  std::vector<float> logits = model.forward({&chunk, 1});
  set_summation_order(SummationOrder::kForward);
  return logits;
}

LogitComparison compare_orders(const LoadedModel& m, Numerics numerics, uint32_t seed) {
  const std::vector<int32_t> ids = random_token_ids(150, seed);
  LogitComparison cmp;
  cmp.add(prefill(m, ids, numerics, SummationOrder::kReverse),
          prefill(m, ids, numerics, SummationOrder::kForward), m.config.vocab_size);
  return cmp;
}

TEST(SummationOrder, ReverseOrderReallyChangesTheSums) {
  const std::vector<float> a = {1.0f, 1e-8f, -1.0f, 1e-8f};
  const std::vector<float> ones(4, 1.0f);
  const float forward = dot(a.data(), ones.data(), 4);
  set_summation_order(SummationOrder::kReverse);
  const float reverse = dot(a.data(), ones.data(), 4);
  set_summation_order(SummationOrder::kForward);
  EXPECT_NE(forward, reverse);
}

// Without FP8/bf16 quantizers the order hardly matters: fp32 rounding noise only.
TEST(SummationOrder, Fp32NumericsBarelyNoticeTheOrder) {
  const LogitComparison cmp = compare_orders(synthetic_tiny(), Numerics::kFp32, 1);
  cmp.print("synthetic:tiny fp32", 5e-3);
  EXPECT_LE(cmp.worst(), 1e-4);
}

// Official numerics on a well-conditioned model: two orders stay within the GPU acceptance
// bound (5e-3 relative per position), so that bound is a fair test of a second implementation.
TEST(SummationOrder, WellConditionedSingleLayersStayWithinTheBound) {
  for (int64_t index : {0, 2, 3, 4}) {
    const LoadedModel m = testing::scaled_sublayer_outputs(
        testing::single_layer_model(synthetic_tiny(), index), testing::kWellConditionedScale);
    const LogitComparison cmp = compare_orders(m, Numerics::kOfficial, uint32_t(20 + index));
    char name[64];
    std::snprintf(name, sizeof(name), "layer %lld alone, outputs / 32",
                  static_cast<long long>(index));
    cmp.print(name, 5e-3);
    EXPECT_LE(cmp.worst(), 5e-3) << name;
    EXPECT_EQ(cmp.argmax_agreement(), 1.0) << name;
  }
}

}  // namespace
}  // namespace dsv4::cpu
