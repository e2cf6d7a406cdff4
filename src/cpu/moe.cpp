#include "cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {
namespace {

float softplus(float x) {
  return x > 20.0f ? x : std::log1p(std::exp(x));
}

std::vector<float> router_scores(const float* logits, int64_t n, const std::string& func) {
  std::vector<float> scores(logits, logits + n);
  if (func == "sqrtsoftplus") {
    for (float& s : scores) s = std::sqrt(softplus(s));
  } else if (func == "sigmoid") {
    for (float& s : scores) s = 1.0f / (1.0f + std::exp(-s));
  } else if (func == "softmax") {
    const float max = *std::max_element(scores.begin(), scores.end());
    float sum = 0.0f;
    for (float& s : scores) sum += (s = std::exp(s - max));
    for (float& s : scores) s /= sum;
  } else {
    fail("unknown score_func '{}'", func);
  }
  return scores;
}

// One expert on its tokens: w2(bf16(silu(min(w1 x, L)) · clamp(w3 x, ±L) · weight)).
void expert_forward(const float* x, int64_t tokens, const ExpertWeights& expert,
                    const float* token_weights, double limit, Numerics numerics, float* out) {
  const int64_t inter = expert.w1.rows;
  std::vector<float> gate(size_t(tokens * inter)), up(size_t(tokens * inter));
  linear(x, tokens, expert.w1, numerics, gate.data());
  linear(x, tokens, expert.w3, numerics, up.data());
  round_activations(gate.data(), gate.size(), numerics);
  round_activations(up.data(), up.size(), numerics);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < inter; ++i) {
      float g = gate[size_t(t * inter + i)], u = up[size_t(t * inter + i)];
      if (limit > 0) {
        u = std::clamp(u, -float(limit), float(limit));
        g = std::min(g, float(limit));
      }
      float h = g / (1.0f + std::exp(-g)) * u;
      if (token_weights) h *= token_weights[t];
      gate[size_t(t * inter + i)] = round_activation(h, numerics);
    }
  }
  linear(gate.data(), tokens, expert.w2, numerics, out);
  round_activations(out, size_t(tokens * expert.w2.rows), numerics);
}

}  // namespace

Routing route(const float* x, const int32_t* ids, int64_t tokens, const ModelConfig& config,
              const MoeWeights& weights, bool hash_routing) {
  const int64_t E = config.n_routed_experts, k = config.n_activated_experts;
  std::vector<float> logits(size_t(tokens * E));
  linear(x, tokens, weights.gate, Numerics::kFp32, logits.data());
  Routing routing{std::vector<int32_t>(size_t(tokens * k)), std::vector<float>(size_t(tokens * k))};
  for (int64_t t = 0; t < tokens; ++t) {
    const std::vector<float> scores = router_scores(logits.data() + t * E, E, config.score_func);
    int32_t* chosen = routing.experts.data() + t * k;
    if (hash_routing) {
      std::copy_n(weights.tid2eid.data() + int64_t(ids[t]) * k, k, chosen);
    } else {
      std::vector<int32_t> order(static_cast<size_t>(E));
      std::iota(order.begin(), order.end(), 0);
      const auto biased = [&](int32_t e) {
        return scores[size_t(e)] +
               (weights.gate_bias.empty() ? 0.0f : weights.gate_bias[size_t(e)]);
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return biased(a) != biased(b) ? biased(a) > biased(b) : a < b;
      });
      std::copy_n(order.begin(), k, chosen);
    }
    float* w = routing.weights.data() + t * k;
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += (w[j] = scores[size_t(chosen[j])]);
    for (int64_t j = 0; j < k; ++j) {
      if (config.score_func != "softmax") w[j] /= sum;
      w[j] *= float(config.route_scale);
    }
  }
  return routing;
}

void moe_forward(const float* x, const int32_t* ids, int64_t tokens, const ModelConfig& config,
                 const MoeWeights& weights, bool hash_routing, Numerics numerics, float* out) {
  const int64_t dim = config.dim, k = config.n_activated_experts;
  const Routing routing = route(x, ids, tokens, config, weights, hash_routing);
  std::vector<float> sum(size_t(tokens * dim), 0.0f);
  std::vector<float> gathered, token_weights, expert_out;
  std::vector<int64_t> members;
  for (int64_t e = 0; e < config.n_routed_experts; ++e) {
    members.clear();
    token_weights.clear();
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        if (routing.experts[size_t(t * k + j)] != e) continue;
        members.push_back(t);
        token_weights.push_back(routing.weights[size_t(t * k + j)]);
      }
    }
    if (members.empty()) continue;
    const auto m = int64_t(members.size());
    gathered.resize(size_t(m * dim));
    for (int64_t i = 0; i < m; ++i)
      std::copy_n(x + members[size_t(i)] * dim, dim, gathered.data() + i * dim);
    expert_out.resize(size_t(m * dim));
    expert_forward(gathered.data(), m, weights.experts[size_t(e)], token_weights.data(),
                   config.swiglu_limit, numerics, expert_out.data());
    for (int64_t i = 0; i < m; ++i) {
      float* row = sum.data() + members[size_t(i)] * dim;
      for (int64_t c = 0; c < dim; ++c) row[c] += expert_out[size_t(i * dim + c)];
    }
  }
  std::vector<float> shared(size_t(tokens * dim));
  expert_forward(x, tokens, weights.shared, nullptr, config.swiglu_limit, numerics, shared.data());
  for (size_t i = 0; i < sum.size(); ++i) out[i] = round_activation(sum[i] + shared[i], numerics);
}

}  // namespace dsv4::cpu
