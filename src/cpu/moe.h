// The MoE sublayer (MODEL.md §2 "MoE"): router (score or hash), routed experts with clamped
// SwiGLU, the shared expert; routed outputs summed in fp32 in ascending expert id.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cpu {

struct Routing {
  std::vector<int32_t> experts;  // [tokens, k]
  std::vector<float> weights;    // [tokens, k]
};

// x: [tokens, dim] (bf16 values in official numerics); ids: the tokens' ids (hash layers).
Routing route(const float* x, const int32_t* ids, int64_t tokens, const ModelConfig& config,
              const MoeWeights& weights, bool hash_routing);

// out: [tokens, dim].
void moe_forward(const float* x, const int32_t* ids, int64_t tokens, const ModelConfig& config,
                 const MoeWeights& weights, bool hash_routing, Numerics numerics, float* out);

}  // namespace dsv4::cpu
