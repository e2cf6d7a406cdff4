// Manifold-constrained hyper-connections on the GPU (MODEL.md §2 "mHC site"), the twins of
// src/cpu/hyper_connection.h. Residual streams are bf16 [tokens, hc, dim]; the parameters
// (fn, base, scale) are fp32 device arrays.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "model/config.h"

namespace dsv4::cuda {

struct HcShape {
  int64_t hc = 4;  // only 4 is supported (every published config)
  int64_t dim = 0;
  float norm_eps = 1e-6f;
  float hc_eps = 1e-6f;
  int sinkhorn_iters = 20;
};

inline HcShape hc_shape(const ModelConfig& config) {
  return {config.hc_mult, config.dim, float(config.norm_eps), float(config.hc_eps),
          int(config.hc_sinkhorn_iters)};
}

// One site's parameters on the device: fn [mix, hc·dim], base [mix], scale [3] for a block
// site (mix = (2 + hc)·hc) or [1] for the head (mix = hc).
struct HcParams {
  const float* fn = nullptr;
  const float* base = nullptr;
  const float* scale = nullptr;
};

// Floats of scratch that hc_collapse / hc_head_collapse need for `max_tokens` tokens.
int64_t hc_workspace_floats(int64_t max_tokens, const HcShape& shape);

// Collapses the streams into the sublayer input: collapsed = bf16(Σ_j pre_j X_j), bf16
// [tokens, dim]; post: fp32 [tokens, hc]; comb: fp32 [tokens, hc, hc] (comb[j][k] weighs
// input stream j into output k), for hc_expand. Three launches: a split-K matvec of the mixes,
// one block per token for the pre weights and the weighted stream sum, one warp per token for
// post and comb (sigmoids, Sinkhorn).
void hc_collapse(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                 const HcParams& params, float* workspace, uint16_t* collapsed, float* post,
                 float* comb, cudaStream_t stream);
// hc_collapse in two parts, so that post and comb (the Sinkhorn's long dependent chain) can be
// computed on another stream while the sublayer runs: the mixes and the collapsed input, then
// post and comb from the mixes in `workspace`, launched after the first part (on its stream,
// or on one that waits for it) and before the workspace is reused.
void hc_collapse_input(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                       const HcParams& params, float* workspace, uint16_t* collapsed,
                       cudaStream_t stream);
void hc_collapse_weights(int64_t tokens, const HcShape& shape, const HcParams& params,
                         const float* workspace, float* post, float* comb, cudaStream_t stream);

// streams_k <- bf16(post_k · output + Σ_j comb[j][k] · streams_j), in place; output: bf16
// [tokens, dim].
void hc_expand(uint16_t* streams, const uint16_t* output, const float* post, const float* comb,
               int64_t tokens, const HcShape& shape, cudaStream_t stream);

// The final collapse before the model norm (pre weights only): collapsed bf16 [tokens, dim].
void hc_head_collapse(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                      const HcParams& params, float* workspace, uint16_t* collapsed,
                      cudaStream_t stream);

}  // namespace dsv4::cuda
