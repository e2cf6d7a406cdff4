// One sequence on a chosen backend, the way the CLI commands drive a model: feed ids, get the
// logits after each. `cpu` runs cpu::Model in either numerics; `cuda` runs CudaModel
// (official numerics only), feeding long prompts in steps of at most kCudaStepTokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "model/config.h"
#include "model/model_source.h"

namespace dsv4::cli {

class SequenceRunner {
 public:
  virtual ~SequenceRunner() = default;
  virtual const ModelConfig& config() const = 0;
  // Forgets the sequence: the next feed starts at position 0.
  virtual void restart() = 0;
  // Appends `ids` as one prefill chunk (one decode step for a single id); returns the logits
  // after each, fp32 [ids.size(), vocab].
  virtual std::vector<float> feed(std::span<const int32_t> ids) = 0;
  // Appends `ids` as feed() does and returns the token `sampler` picks from the logits after the
  // last of them, among the ids below `sampling_vocab`. Here: feed() and the host sampler; the
  // CUDA runner samples on the GPU and copies back only the id.
  virtual int32_t feed_and_sample(std::span<const int32_t> ids, Sampler& sampler,
                                  size_t sampling_vocab);
};

// `backend`: "cpu" or "cuda" (a one-line error where this build or machine cannot run it).
// `max_length`: the longest the sequence may grow (sizes the CUDA KV cache).
std::unique_ptr<SequenceRunner> make_sequence_runner(const std::string& backend,
                                                     const LoadedModel& model, Numerics numerics,
                                                     int64_t max_length);

}  // namespace dsv4::cli
