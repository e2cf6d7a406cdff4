#include "cpu/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {

void attend_head(const float* q, const std::vector<const float*>& rows, int64_t dim, float scale,
                 float sink, Numerics numerics, float* out) {
  const auto n = int64_t(rows.size());
  std::fill(out, out + dim, 0.0f);
  float running_max = -std::numeric_limits<float>::infinity();
  float denominator = 0.0f;
  float scores[kAttentionBlockRows];
  for (int64_t first = 0; first < n; first += kAttentionBlockRows) {
    const int64_t count = std::min(kAttentionBlockRows, n - first);
    float block_max = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < count; ++i) {
      const float* row = rows[size_t(first + i)];
      if (!row) continue;
      scores[i] = dot(q, row, dim) * scale;
      block_max = std::fmax(block_max, scores[i]);
    }
    // A block of masked entries changes nothing (the reference never starts with one).
    if (block_max == -std::numeric_limits<float>::infinity()) continue;
    const float grown = std::fmax(running_max, block_max);
    const float rescale = std::exp(running_max - grown);
    running_max = grown;
    for (int64_t c = 0; c < dim; ++c) out[c] *= rescale;
    float block_sum = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
      const float* row = rows[size_t(first + i)];
      if (!row) continue;
      const float e = std::exp(scores[i] - running_max);
      block_sum += e;
      const float weight = round_activation(e, numerics);
      for (int64_t c = 0; c < dim; ++c) out[c] += weight * row[c];
    }
    denominator = denominator * rescale + block_sum;
  }
  denominator += std::exp(sink - running_max);
  for (int64_t c = 0; c < dim; ++c) out[c] = round_activation(out[c] / denominator, numerics);
}

}  // namespace dsv4::cpu
