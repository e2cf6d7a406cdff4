// The CUDA backend's forward pass (MODEL.md §2) in official numerics, the twin of cpu::Model:
// a batch of sequences, each fed a prefill chunk or a single decode token, through the
// GPU-tested kernels of src/cuda/kernels. Activations between ops are bf16 (raw bits); GEMM
// inputs are their fp32 widenings. The attention state lives in a paged KvCache.
//
// A step is enqueued on the model's stream with no host sync and no allocation: the host
// uploads the step's token metadata (and block tables when a sequence grows into a new block),
// then replays a CUDA graph captured once per token count (or launches the kernels directly
// for a step size seen once).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cuda {

struct DeviceHc;
struct DeviceWeights;

struct CudaModelLimits {
  int32_t max_sequences = 1;
  int64_t max_tokens_per_step = 256;
  int64_t max_length = 4096;  // tokens one sequence may reach
  // Prefill steps of at least this many tokens dequantize each layer's attention rows once
  // (sm_90, head_dim 512) instead of per token, where that is faster (SparseAttentionArgs::dense).
  int64_t dense_prefill_min_tokens = 256;
  // Decode steps of HCA layers read bf16 copies of the compressed entries that the cache keeps
  // beside the FP8 rows (sm_90, head_dim 512; 1 KB more per entry, one per 128 positions).
  bool dense_hca_decode = true;
};

class CudaModel {
 public:
  // Takes device weights (upload_weights or random_device_weights) and allocates the cache and
  // every scratch buffer.
  CudaModel(const ModelConfig& config, DeviceWeights weights, const CudaModelLimits& limits);
  // Uploads host weights first.
  CudaModel(const ModelConfig& config, const ModelWeights& weights, const CudaModelLimits& limits);
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
  // Enqueues one step that appends every chunk to its sequence; returns the number of tokens.
  // Chunks must name distinct admitted slots. The logits after each fed token, in the order
  // given, are in logits() once the stream reaches the end of the step.
  int32_t step(std::span<const Chunk> chunks);
  // fp32 [tokens of the last step, vocab] on the device.
  const float* logits() const;
  cudaStream_t stream() const;
  // step(), then the logits copied to the host (synchronises).
  std::vector<float> forward(std::span<const Chunk> chunks);

  // Benchmarks only: makes `slot` (admitted, empty) a sequence of `length` tokens whose cached
  // rows (window, compressed entries, index keys) are random valid encodings, without running
  // the model over a prompt. Decode steps after it cost what they would after a real prompt.
  void fill_random_context(int32_t slot, int64_t length, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  // How many layers of the last step read dense attention rows (tests, benchmarks).
  int64_t dense_attention_layers() const;

 private:
  struct State;
  void run_layers(int32_t tokens);
  void collapse_streams(const DeviceHc& site, int32_t tokens);
  void expand_streams(int32_t tokens);
  void attention(int64_t layer, int32_t tokens);
  void moe(int64_t layer, int32_t tokens);

  ModelConfig config_;
  std::unique_ptr<State> s_;
};

}  // namespace dsv4::cuda
