#include "cpu/compressor.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/hadamard.h"
#include "cpu/activations.h"
#include "cpu/norms.h"

namespace dsv4::cpu {
namespace {

void reset_window(std::vector<float>& rows, size_t size, float value) {
  rows.assign(size, value);
}

}  // namespace

bool compressor_push(CompressorState& state, const CompressorShape& shape,
                     const CompressorWeights& weights, int64_t position, const float* kv,
                     const float* gate, float* pooled) {
  const int64_t width = shape.width(), ratio = shape.ratio, d = shape.dim;
  const size_t window_size = size_t(ratio * width);
  if (state.current_kv.size() != window_size) {
    reset_window(state.current_kv, window_size, 0.0f);
    reset_window(state.current_gate, window_size, -std::numeric_limits<float>::infinity());
  }
  const int64_t slot = position % ratio;
  const float* ape = weights.ape.data() + slot * width;
  for (int64_t c = 0; c < width; ++c) {
    state.current_kv[size_t(slot * width + c)] = kv[c];
    state.current_gate[size_t(slot * width + c)] = gate[c] + ape[c];
  }
  if (slot != ratio - 1) return false;

  // Per channel, a softmax over the slots that feed it, then the weighted sum of kv.
  std::vector<float> logits, values;
  for (int64_t channel = 0; channel < d; ++channel) {
    logits.clear();
    values.clear();
    if (shape.overlap) {
      for (int64_t s = 0; s < ratio; ++s) {
        const bool present = state.has_previous;
        logits.push_back(present ? state.previous_gate[size_t(s * width + channel)]
                                 : -std::numeric_limits<float>::infinity());
        values.push_back(present ? state.previous_kv[size_t(s * width + channel)] : 0.0f);
      }
    }
    const int64_t offset = shape.overlap ? d : 0;
    for (int64_t s = 0; s < ratio; ++s) {
      logits.push_back(state.current_gate[size_t(s * width + offset + channel)]);
      values.push_back(state.current_kv[size_t(s * width + offset + channel)]);
    }
    float max = -std::numeric_limits<float>::infinity();
    for (float l : logits) max = std::fmax(max, l);
    float sum = 0.0f;
    for (float& l : logits) sum += (l = std::exp(l - max));
    float entry = 0.0f;
    for (size_t s = 0; s < logits.size(); ++s) entry += values[s] * (logits[s] / sum);
    pooled[channel] = entry;
  }
  if (shape.overlap) {
    state.previous_kv = state.current_kv;
    state.previous_gate = state.current_gate;
    state.has_previous = true;
  }
  return true;
}

void finish_compressed_entry(float* entry, const CompressorShape& shape,
                             const CompressorWeights& weights, const Rope& rope,
                             int64_t window_index, EntryKind kind, double norm_eps,
                             Numerics numerics) {
  const int64_t d = shape.dim;
  round_activations(entry, size_t(d), numerics);
  rms_norm(entry, 1, d, weights.norm.data(), norm_eps, numerics, entry);
  const int64_t rope_dim = 2 * int64_t(rope.pair_count());
  rope.apply(entry + d - rope_dim, window_index * shape.ratio, false, numerics);
  if (kind == EntryKind::kIndexKey && numerics == Numerics::kOfficial) {
    hadamard_transform(entry, size_t(d));
    round_activations(entry, size_t(d), numerics);
  }
}

}  // namespace dsv4::cpu
