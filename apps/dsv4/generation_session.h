// One conversation with a model on either backend: feeds prompts (reusing the longest prefix
// already in the sequence state), samples tokens and streams them to a callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/sampler.h"
#include "sequence_runner.h"

namespace dsv4::cli {

struct GenerationStats {
  int64_t prompt_tokens = 0;  // tokens actually prefilled (after prefix reuse)
  int64_t generated = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // one-token forward passes (and their sampling) only
  int64_t decode_steps = 0;
  bool interrupted = false;
};

class GenerationSession {
 public:
  // Sampling only considers ids below `sampling_vocab` (a tokenizer smaller than the model's
  // vocabulary cannot print the rest); 0 means the model's whole vocabulary.
  explicit GenerationSession(SequenceRunner& model, size_t sampling_vocab = 0);

  // Generates after `prompt` until a stop id, max_tokens, or `stop` becomes true. `on_token`
  // sees every sampled id as it comes.
  GenerationStats generate(const std::vector<int32_t>& prompt, int64_t max_tokens, Sampler& sampler,
                           const std::vector<int32_t>& stop_ids,
                           const std::function<void(int32_t)>& on_token,
                           const std::atomic<bool>* stop = nullptr);

 private:
  SequenceRunner& model_;
  size_t sampling_vocab_;
  std::vector<int32_t> fed_;  // ids whose state is in the runner's sequence
};

}  // namespace dsv4::cli
