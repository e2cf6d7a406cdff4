// MoE router (MODEL.md §2 "MoE"), the twin of cpu::route after the gate GEMM: scores from
// fp32 gate logits, top-k of score + bias (ties to the lower expert id) or hash routing
// through tid2eid[token], weights = score / Σ score · route_scale. One launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace dsv4::cuda {

enum class ScoreFunc { kSqrtSoftplus, kSigmoid, kSoftmax };
ScoreFunc parse_score_func(const std::string& name);  // config.score_func spelling

struct RouterShape {
  int64_t experts = 0;  // n_routed_experts, at most 512
  int64_t k = 0;        // n_activated_experts, at most 16
  ScoreFunc score_func = ScoreFunc::kSqrtSoftplus;
  float route_scale = 1.0f;
};

// logits: fp32 [tokens, experts] (x · Wgᵀ in fp32, the gate GEMM's output).
// Score routing: bias fp32 [experts] or null; tid2eid and ids null.
// Hash routing: tid2eid int32 [vocab, k] and ids int32 [tokens] (device); bias ignored.
// experts_out: int32 [tokens, k] in choice order; weights_out: fp32 [tokens, k].
void moe_route(const float* logits, int64_t tokens, const RouterShape& shape, const float* bias,
               const int32_t* tid2eid, const int32_t* ids, int32_t* experts_out, float* weights_out,
               cudaStream_t stream);

}  // namespace dsv4::cuda
