// The host half of RoPE: the shared frequency table (core/rope_frequencies.h), uploaded once.
#include "core/error.h"
#include "core/rope_frequencies.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"

namespace dsv4::cuda {

std::vector<float> rope_inv_freq_for_layer(const ModelConfig& config, bool compressed) {
  if (!compressed) {
    return rope_inverse_frequencies(config.rope_head_dim, config.rope_theta, 0, 1.0, 0.0, 0.0);
  }
  return rope_inverse_frequencies(config.rope_head_dim, config.compress_rope_theta,
                                  config.original_seq_len, config.rope_factor, config.beta_fast,
                                  config.beta_slow);
}

RopeTable::RopeTable(const std::vector<float>& inv_freq) : inv_freq_(inv_freq) {
  if (inv_freq.empty() || inv_freq.size() > 64) {
    fail("RopeTable: {} frequencies (rope_dim must be in [2, 128])", inv_freq.size());
  }
}

}  // namespace dsv4::cuda
