// Manifold-constrained hyper-connections (MODEL.md §2 "mHC site"): the residual is hc_mult
// parallel streams per token; each site collapses them into the sublayer input and mixes the
// sublayer output back in through a Sinkhorn-normalised matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cpu {

struct HyperConnectionMix {
  std::vector<float> post;  // [tokens, hc]
  std::vector<float> comb;  // [tokens, hc, hc], comb[j][k] weighs input stream j into output k
};

// Projects the n×n logits c (row-major, in place) towards a doubly stochastic matrix: row
// softmax + eps, a column normalisation, then (iters − 1) × (row, column) normalisations,
// each dividing by (sum + eps).
void sinkhorn(float* c, int64_t n, int64_t iters, float eps);

// streams: [tokens, hc, dim]. Writes the collapsed sublayer input [tokens, dim] and returns
// the post / comb weights for `hyper_connection_expand`.
HyperConnectionMix hyper_connection_collapse(const float* streams, int64_t tokens,
                                             const ModelConfig& config,
                                             const HyperConnectionWeights& weights,
                                             Numerics numerics, float* collapsed);

// streams <- post_k · output + Σ_j comb[j][k] · streams_j (in place).
void hyper_connection_expand(float* streams, const float* output, int64_t tokens,
                             const ModelConfig& config, const HyperConnectionMix& mix,
                             Numerics numerics);

// The final collapse before the model norm (hc_head: pre weights only).
void hyper_connection_head(const float* streams, int64_t tokens, const ModelConfig& config,
                           const HyperConnectionWeights& weights, Numerics numerics,
                           float* collapsed);

}  // namespace dsv4::cpu
