// RMS normalisations of MODEL.md §2.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv4::cpu {

// y = w · (x · rsqrt(mean(x²) + eps)) in fp32; rounded to bf16 in official numerics.
// rows × dim, in place allowed.
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, double eps,
              Numerics numerics, float* y);

// The per-head query norm without weight. Official numerics compute it the way the reference
// does on a bf16 tensor: every intermediate (x², their mean, + eps, rsqrt, the product) is
// rounded to bf16. In place.
void unweighted_head_norm(float* x, int64_t rows, int64_t dim, double eps, Numerics numerics);

}  // namespace dsv4::cpu
