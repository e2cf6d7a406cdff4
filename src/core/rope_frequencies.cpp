#include "core/rope_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace dsv4 {

std::vector<float> rope_inverse_frequencies(int64_t rope_dim, double theta,
                                            int64_t original_seq_len, double factor,
                                            double beta_fast, double beta_slow) {
  if (rope_dim <= 0 || rope_dim % 2 != 0)
    fail("rope: rope_dim {} must be even and positive", rope_dim);
  const int64_t half = rope_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // The reference computes base ** (2i/d) in fp32.
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

}  // namespace dsv4
