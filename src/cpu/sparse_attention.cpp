#include "cpu/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {

void attend_head(const float* q, const std::vector<const float*>& rows, int64_t dim, float scale,
                 float sink, Numerics numerics, float* out) {
  std::vector<float> scores(rows.size());
  float max = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < rows.size(); ++i) {
    scores[i] = dot(q, rows[i], dim) * scale;
    max = std::fmax(max, scores[i]);
  }
  std::fill(out, out + dim, 0.0f);
  float denominator = 0.0f;
  for (size_t i = 0; i < rows.size(); ++i) {
    const float e = std::exp(scores[i] - max);
    denominator += e;
    const float weight = round_activation(e, numerics);
    for (int64_t c = 0; c < dim; ++c) out[c] += weight * rows[i][c];
  }
  denominator += std::exp(sink - max);
  for (int64_t c = 0; c < dim; ++c) out[c] = round_activation(out[c] / denominator, numerics);
}

}  // namespace dsv4::cpu
