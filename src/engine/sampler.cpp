#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace dsv4 {

Sampler::Sampler(const SamplingParams& params) : params_(params), generator_(params.seed) {
  if (params.temperature < 0.0f) fail("--temperature must be >= 0, got {}", params.temperature);
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    fail("--top-p must be in (0, 1], got {}", params.top_p);
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  const auto argmax = [&] {
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  };
  if (params_.temperature == 0.0f) return argmax();

  const float max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    total += probs[i] = std::exp(double(logits[i] - max) / double(params_.temperature));
  }
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return probs[size_t(a)] != probs[size_t(b)] ? probs[size_t(a)] > probs[size_t(b)] : a < b;
  });
  // The nucleus: the most probable tokens until their mass reaches top_p.
  double mass = 0.0;
  size_t keep = 0;
  while (keep < order.size() && mass < double(params_.top_p) * total) {
    mass += probs[size_t(order[keep++])];
  }
  const double u = next_uniform() * mass;
  double cumulative = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[size_t(order[i])];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];
}

// 53 random bits -> a uniform double in [0, 1): independent of the standard library's
// distribution implementations, so a seed gives the same tokens everywhere.
double Sampler::next_uniform() {
  return double(generator_() >> 11) * 0x1p-53;
}

}  // namespace dsv4
