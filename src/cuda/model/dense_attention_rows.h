// The CUDA model's dense (bf16) attention rows (SparseAttentionArgs::dense), planned on the host
// each step, their per-token bases uploaded with the step's metadata, and one scratch that every
// layer of the step reuses:
//   prefill steps (at least min_tokens): one layout per compress ratio in use, windows and
//     entries dequantized once per layer;
//   decode steps: HCA layers whose entries the cache keeps as bf16 copies
//     (KvCache::dense_entry_rows) read them there, the scratch holding each token's window only.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/sparse_attention.h"
#include "cuda/runtime/device_buffer.h"
#include "model/config.h"

namespace dsv4::cuda {

// Whether the dense rows path can run for a model (sm_90, head_dim 512, rope 64, 64-head tiles).
bool dense_attention_applies(const ModelConfig& config);

class DenseAttentionRows {
 public:
  // Steps of up to max_tokens tokens at positions below max_length; prefill from min_tokens,
  // decode of HCA layers when hca_decode. None (no scratch, no metadata) where the dense path
  // cannot run.
  DenseAttentionRows(const ModelConfig& config, int64_t max_tokens, int64_t max_length,
                     int64_t min_tokens, bool hca_decode);

  // int32 metadata blocks of max_tokens each that it needs after the batch's own.
  int64_t meta_blocks() const { return int64_t(ratios_.size()) + (hca_decode_ ? 1 : 0); }

  // Plans one step from the host metadata (blocks of max_tokens: positions at block 2, chunk
  // begins at 3, ends at 4), writing its per-token bases from block first_block. Returns how
  // many of its blocks the step must upload (0 for steps it does not serve).
  int64_t plan_step(int32_t* meta, int64_t max_tokens, int64_t first_block, int32_t tokens,
                    bool decode_only);

  // Sets args.dense for layer `layer` (compress ratio `ratio`) where this step's plan serves it
  // and dense rows pay; `meta` is the device copy of the metadata.
  void apply(SparseAttentionArgs& args, int32_t layer, int32_t ratio, const KvCache& cache,
             const int32_t* meta, int64_t max_tokens, int64_t first_block);

  int64_t layers_in_last_step() const { return layers_; }

 private:
  int32_t window_ = 0;
  int64_t head_dim_ = 0, min_tokens_ = 0;
  bool hca_decode_ = false;
  DeviceBuffer<uint16_t> rows_;
  std::vector<int32_t> ratios_;
  std::vector<int64_t> row_counts_;  // this step's, per ratio; 0: not dense
  int64_t window_rows_ = 0;          // this decode step's window-only layout; 0: not dense
  int64_t layers_ = 0, hca_layers_ = 0;
};

}  // namespace dsv4::cuda
