// The router against cpu::route: the same experts (ties to the lower id) and weights.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/linear.h"
#include "cpu/moe.h"
#include "cuda/kernels/moe/router.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

struct RouterCase {
  int64_t tokens, dim, experts, k;
  std::string score_func;
  bool bias, hash;
};

// The CPU's biased score of one expert (cpu::route's formula), for diagnosing near-ties.
float cpu_biased_score(float logit, float bias, const std::string& func) {
  if (func == "sqrtsoftplus") {
    return std::sqrt(logit > 20.0f ? logit : std::log1p(std::exp(logit))) + bias;
  }
  return 1.0f / (1.0f + std::exp(-logit)) + bias;
}

void check_router(const RouterCase& c) {
  std::mt19937_64 rng(test::fresh_seed("router"));
  ModelConfig config;
  config.dim = c.dim;
  config.n_routed_experts = c.experts;
  config.n_activated_experts = c.k;
  config.score_func = c.score_func;
  config.route_scale = 1.5;
  MoeWeights weights;
  weights.gate.rows = c.experts;
  weights.gate.cols = c.dim;
  weights.gate.format = WeightFormat::kBF16;
  weights.gate.values =
      test::random_normal(rng, size_t(c.experts * c.dim), 1.0f / std::sqrt(float(c.dim)));
  if (c.bias) weights.gate_bias = test::random_normal(rng, size_t(c.experts), 0.1f, false);
  const int64_t vocab = 1000;
  std::vector<int32_t> ids(static_cast<size_t>(c.tokens));
  for (int32_t& id : ids) id = int32_t(rng() % uint64_t(vocab));
  if (c.hash) {  // distinct experts per token id, as the checkpoints' tid2eid
    std::vector<int32_t> all(static_cast<size_t>(c.experts));
    for (int64_t v = 0; v < vocab; ++v) {
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      weights.tid2eid.insert(weights.tid2eid.end(), all.begin(), all.begin() + c.k);
    }
  }
  const std::vector<float> x = test::random_normal(rng, size_t(c.tokens * c.dim), 1.0f);
  const cpu::Routing expected = cpu::route(x.data(), ids.data(), c.tokens, config, weights, c.hash);

  // The gate GEMM is another kernel family's job: its fp32 output comes from the CPU here.
  std::vector<float> logits(size_t(c.tokens * c.experts));
  cpu::linear(x.data(), c.tokens, weights.gate, Numerics::kFp32, logits.data());
  DeviceBuffer<float> d_logits(logits), d_weights(size_t(c.tokens * c.k));
  DeviceBuffer<float> d_bias(c.bias ? weights.gate_bias : std::vector<float>(1));
  DeviceBuffer<int32_t> d_tid2eid(c.hash ? weights.tid2eid : std::vector<int32_t>(1));
  DeviceBuffer<int32_t> d_ids(ids), d_experts(size_t(c.tokens * c.k));
  test::poison(d_weights);
  test::poison(d_experts);
  const RouterShape shape{c.experts, c.k, parse_score_func(c.score_func), 1.5f};
  const auto launch = [&] {
    moe_route(d_logits.data(), c.tokens, shape, c.bias ? d_bias.data() : nullptr,
              c.hash ? d_tid2eid.data() : nullptr, c.hash ? d_ids.data() : nullptr,
              d_experts.data(), d_weights.data(), nullptr);
  };
  launch();
  const std::vector<int32_t> experts = d_experts.download();
  size_t mismatched = 0, near_ties = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t j = 0; j < c.k; ++j) {
      const size_t i = size_t(t * c.k + j);
      if (experts[i] == expected.experts[i]) continue;
      ++mismatched;
      // A legitimate difference: the two experts' biased scores within 2 fp32 ulps (the GPU's
      // log1p may round differently from glibc's log1pf).
      const auto score = [&](int32_t e) {
        if (e < 0 || e >= c.experts) return NAN;
        return cpu_biased_score(logits[size_t(t * c.experts + e)],
                                c.bias ? weights.gate_bias[size_t(e)] : 0.0f, c.score_func);
      };
      const float a = score(experts[i]), b = score(expected.experts[i]);
      if (std::fabs(a - b) <= 2.0f * std::fabs(b) * 1.2e-7f) ++near_ties;
    }
  }
  std::printf(
      "[measure] router %s%s%s T=%lld E=%lld k=%lld: %zu of %zu choices differ (%zu near-ties)\n",
      c.score_func.c_str(), c.bias ? "+bias" : "", c.hash ? " hash" : "",
      static_cast<long long>(c.tokens), static_cast<long long>(c.experts),
      static_cast<long long>(c.k), mismatched, experts.size(), near_ties);
  EXPECT_EQ(mismatched, near_ties);
  if (mismatched == 0) {
    const test::Stats w = test::compare(d_weights.download(), expected.weights, false);
    test::report("router weights (fp32 ulps)", w);
    EXPECT_TRUE(w.finite);
    EXPECT_LE(w.relative, 1e-6);
    // A score may be 1 ulp off the CPU's (the GPU's log1p rounds once from double, glibc's
    // log1pf is within an ulp). A weight s / sum(s) · route_scale then differs by up to
    // ~6·2^-24 relative (the score's and the sum's ulps, the quotient's and the product's
    // roundings), i.e. up to 6 ulps; 5 were seen on an H200.
    EXPECT_LE(w.max_ulp, 8);
  }
  test::report_time(fmt::format("moe_route T={} E={}", c.tokens, c.experts).c_str(),
                    test::median_us(launch));
}

TEST(Router, ScoreRoutingMatchesTheCpuAtFlashShapes) {
  DSV4_REQUIRE_GPU();
  check_router({300, 4096, 256, 6, "sqrtsoftplus", true, false});
  check_router({1, 4096, 256, 6, "sqrtsoftplus", true, false});
  check_router({40, 7168, 384, 6, "sqrtsoftplus", true, false});  // Pro
}

TEST(Router, HashRoutingMatchesTheCpu) {
  DSV4_REQUIRE_GPU();
  check_router({300, 4096, 256, 6, "sqrtsoftplus", false, true});
}

TEST(Router, OtherScoreFunctionsAndOddShapes) {
  DSV4_REQUIRE_GPU();
  check_router({9, 100, 20, 3, "sigmoid", true, false});
  check_router({9, 100, 20, 3, "softmax", false, false});
  check_router({5, 64, 7, 7, "sqrtsoftplus", false, false});  // k = experts
}

// Exact ties: every logit equal, so the biased scores tie wherever the biases do; the choice
// must be the lowest ids among the tied, as std::partial_sort with the CPU's comparator.
TEST(Router, TiesGoToTheLowerExpertId) {
  DSV4_REQUIRE_GPU();
  const int64_t tokens = 3, experts = 64, k = 6;
  std::vector<float> logits(size_t(tokens * experts), 0.25f);
  std::vector<float> bias(static_cast<size_t>(experts), 0.0f);
  for (int64_t e = 0; e < experts; e += 5) bias[size_t(e)] = 0.5f;  // ties among 0, 5, 10, ...
  DeviceBuffer<float> d_logits(logits), d_bias(bias), d_weights(size_t(tokens * k));
  DeviceBuffer<int32_t> d_experts(size_t(tokens * k));
  moe_route(d_logits.data(), tokens, {experts, k, ScoreFunc::kSqrtSoftplus, 1.0f}, d_bias.data(),
            nullptr, nullptr, d_experts.data(), d_weights.data(), nullptr);
  const std::vector<int32_t> chosen = d_experts.download();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) EXPECT_EQ(chosen[size_t(t * k + j)], int32_t(5 * j));
  }
  for (const float w : d_weights.download()) EXPECT_FLOAT_EQ(w, 1.0f / 6.0f);
}

}  // namespace
}  // namespace dsv4::cuda
