// The CUDA backend's forward pass (MODEL.md §2) in official numerics, the twin of cpu::Model:
// a batch of sequences, each fed a prefill chunk or a single decode token, through the
// GPU-tested kernels of src/cuda/kernels. Activations between ops are bf16 (raw bits); GEMM
// inputs are their fp32 widenings. The attention state lives in a paged KvCache.
//
// First version: one stream, one host sync per MoE layer (the expert offsets are read back
// to size each expert's GEMM) and one at the end of a step (the logits). Not yet: a CUDA
// graph for decode, a grouped (one-launch) expert GEMM, fused conversions / epilogues.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cuda {

class CudaModel {
 public:
  // Uploads the weights and allocates the cache and every scratch buffer. Steps may feed at
  // most `max_tokens_per_step` tokens; a sequence may reach `max_length` tokens.
  CudaModel(const ModelConfig& config, const ModelWeights& weights, int32_t max_sequences,
            int64_t max_tokens_per_step, int64_t max_length = 4096);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // A new empty sequence's slot; dsv4::Error when every slot is taken.
  int32_t admit();
  void release(int32_t slot);
  int64_t length(int32_t slot) const;

  struct Chunk {
    int32_t slot;
    std::span<const int32_t> ids;  // fed at positions length(slot), +1, ...
  };
  // Appends every chunk to its sequence and returns the logits after each fed token, fp32
  // [Σ ids, vocab], in the order given. Chunks must name distinct admitted slots.
  std::vector<float> forward(std::span<const Chunk> chunks);

  const ModelConfig& config() const { return config_; }

 private:
  struct State;
  void attention(int64_t layer, int32_t tokens);
  void moe(int64_t layer, int32_t tokens);

  const ModelConfig& config_;
  std::unique_ptr<State> s_;
};

}  // namespace dsv4::cuda
