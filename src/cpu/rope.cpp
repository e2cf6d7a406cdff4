#include "cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "cpu/activations.h"

namespace dsv4::cpu {

Rope::Rope(int64_t rope_dim, double theta, int64_t original_seq_len, double factor,
           double beta_fast, double beta_slow) {
  const int64_t half = rope_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // The reference computes base ** (2i/d) in fp32.
    const float exponent = float(2 * i) / float(rope_dim);
    inv_freq_[size_t(i)] = 1.0f / std::pow(float(theta), exponent);
  }
  if (original_seq_len <= 0) return;
  const auto correction_dim = [&](double rotations) {
    return double(rope_dim) *
           std::log(double(original_seq_len) / (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  const double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(beta_slow)), double(rope_dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const float ramp = std::clamp((float(i) - float(low)) / (float(high) - float(low)), 0.0f, 1.0f);
    const float smooth = 1.0f - ramp;
    const float f = inv_freq_[size_t(i)];
    inv_freq_[size_t(i)] = f / float(factor) * (1.0f - smooth) + f * smooth;
  }
}

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
