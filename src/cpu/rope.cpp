#include "cpu/rope.h"

#include <cmath>

#include "core/rope_frequencies.h"
#include "cpu/activations.h"

namespace dsv4::cpu {

Rope::Rope(int64_t rope_dim, double theta, int64_t original_seq_len, double factor,
           double beta_fast, double beta_slow)
    : inv_freq_(rope_inverse_frequencies(rope_dim, theta, original_seq_len, factor, beta_fast,
                                         beta_slow)) {}

Rope Rope::for_layer(const ModelConfig& config, bool compressed) {
  if (!compressed) return Rope(config.rope_head_dim, config.rope_theta, 0, 1.0, 0.0, 0.0);
  return Rope(config.rope_head_dim, config.compress_rope_theta, config.original_seq_len,
              config.rope_factor, config.beta_fast, config.beta_slow);
}

void Rope::apply(float* x, int64_t position, bool inverse, Numerics numerics) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const float angle = float(position) * inv_freq_[i];
    const float c = std::cos(angle);
    const float s = inverse ? -std::sin(angle) : std::sin(angle);
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = round_activation(a * c - b * s, numerics);
    x[2 * i + 1] = round_activation(a * s + b * c, numerics);
  }
}

}  // namespace dsv4::cpu
