// The host half of RoPE: the frequency table, a line-for-line copy of cpu::Rope's constructor
// (same float/double mix, compiled with the same flags) so that the tables are bit-identical.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"

namespace dsv4::cuda {

std::vector<float> rope_inv_freq(int64_t rope_dim, double theta, int64_t original_seq_len,
                                 double factor, double beta_fast, double beta_slow) {
  if (rope_dim <= 0 || rope_dim % 2 != 0) fail("rope_inv_freq: rope_dim {} must be even", rope_dim);
  const int64_t half = rope_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(rope_dim);
    inv_freq[size_t(i)] = 1.0f / std::pow(float(theta), exponent);
  }
  if (original_seq_len <= 0) return inv_freq;
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
    const float f = inv_freq[size_t(i)];
    inv_freq[size_t(i)] = f / float(factor) * (1.0f - smooth) + f * smooth;
  }
  return inv_freq;
}

std::vector<float> rope_inv_freq_for_layer(const ModelConfig& config, bool compressed) {
  if (!compressed) return rope_inv_freq(config.rope_head_dim, config.rope_theta, 0, 1.0, 0.0, 0.0);
  return rope_inv_freq(config.rope_head_dim, config.compress_rope_theta, config.original_seq_len,
                       config.rope_factor, config.beta_fast, config.beta_slow);
}

RopeTable::RopeTable(const std::vector<float>& inv_freq) : inv_freq_(inv_freq) {
  if (inv_freq.empty() || inv_freq.size() > 64) {
    fail("RopeTable: {} frequencies (rope_dim must be in [2, 128])", inv_freq.size());
  }
}

}  // namespace dsv4::cuda
