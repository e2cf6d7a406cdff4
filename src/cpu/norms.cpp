#include "cpu/norms.h"

#include <cmath>

#include "core/formats.h"
#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, double eps,
              Numerics numerics, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float mean_square = dot(xr, xr, dim) / float(dim);
    const float inv = 1.0f / std::sqrt(mean_square + float(eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
    round_activations(yr, size_t(dim), numerics);
  }
}

void unweighted_head_norm(float* x, int64_t rows, int64_t dim, double eps, Numerics numerics) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    if (numerics == Numerics::kOfficial) {
      float sum = 0.0f;
      for (int64_t i = 0; i < dim; ++i) sum += round_bf16(xr[i] * xr[i]);
      const float mean = round_bf16(sum / float(dim));
      const float inv = round_bf16(1.0f / std::sqrt(round_bf16(mean + float(eps))));
      for (int64_t i = 0; i < dim; ++i) xr[i] = round_bf16(xr[i] * inv);
    } else {
      const float inv = 1.0f / std::sqrt(dot(xr, xr, dim) / float(dim) + float(eps));
      for (int64_t i = 0; i < dim; ++i) xr[i] *= inv;
    }
  }
}

}  // namespace dsv4::cpu
