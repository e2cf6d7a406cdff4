// The CPU backend: DeepSeek-V4's whole forward pass (MODEL.md §2) over a batch of sequences,
// each fed a prefill chunk at any position or a single decode token.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cpu/attention.h"
#include "cpu/sequence_state.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cpu {

class Model {
 public:
  // The model keeps references to `config` and `weights`; they must outlive it.
  Model(const ModelConfig& config, const ModelWeights& weights, Numerics numerics);

  std::unique_ptr<SequenceState> new_sequence() const;

  struct Chunk {
    SequenceState* sequence;
    std::span<const int32_t> ids;  // fed at positions sequence->length, +1, ...
  };
  // Appends every chunk to its sequence and returns the logits after each fed token,
  // [Σ ids, vocab], in the order given. Chunks must name distinct sequences.
  std::vector<float> forward(std::span<const Chunk> chunks);

  const ModelConfig& config() const { return config_; }
  Numerics numerics() const { return numerics_; }

 private:
  const ModelConfig& config_;
  const ModelWeights& weights_;
  Numerics numerics_;
  std::vector<AttentionLayer> attention_;
};

}  // namespace dsv4::cpu
