// Picks the next token from a row of logits: greedy (temperature 0), or temperature + top-p
// (nucleus) sampling from a seeded generator so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace dsv4 {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);
  // The next uniform draw in [0, 1) (53 random bits), as sample() takes one for each token it
  // samples at a temperature above 0: for a sampler elsewhere (the GPU's) that picks the same
  // token given the same draw.
  double next_uniform();
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 generator_;
};

}  // namespace dsv4
