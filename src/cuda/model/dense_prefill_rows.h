// The CUDA model's dense attention rows for prefill steps (SparseAttentionArgs::dense): one
// layout per compress ratio in use, planned on the host each step, its per-token bases uploaded
// with the step's metadata, and one scratch that every layer of the step reuses.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda/kernels/attention/sparse_attention.h"
#include "cuda/runtime/device_buffer.h"
#include "model/config.h"

namespace dsv4::cuda {

class DensePrefillRows {
 public:
  // Steps of at least min_tokens of up to max_tokens tokens at positions below max_length; none
  // (no scratch, no metadata) where the dense path cannot run (not sm_90, another attention
  // shape) or max_tokens < min_tokens.
  DensePrefillRows(const ModelConfig& config, int64_t max_tokens, int64_t max_length,
                   int64_t min_tokens);

  // int32 metadata blocks of max_tokens each that it needs after the batch's own.
  int64_t meta_blocks() const { return int64_t(ratios_.size()); }

  // Plans one step from the host metadata (blocks of max_tokens: positions at block 2, chunk
  // begins at 3, ends at 4), writing each ratio's per-token bases at block first_block + r.
  // Returns how many of its blocks the step must upload (0 for steps it does not serve).
  int64_t plan_step(int32_t* meta, int64_t max_tokens, int64_t first_block, int32_t tokens,
                    bool decode_only);

  // Sets args.dense for a layer of compress ratio `ratio` when this step's layout of that ratio
  // fits the scratch and dense rows pay for args; `meta` is the device copy of the metadata.
  void apply(SparseAttentionArgs& args, int32_t ratio, const int32_t* meta, int64_t max_tokens,
             int64_t first_block);

  int64_t layers_in_last_step() const { return layers_; }

 private:
  int32_t window_ = 0;
  int64_t head_dim_ = 0, min_tokens_ = 0;
  DeviceBuffer<uint16_t> rows_;
  std::vector<int32_t> ratios_;
  std::vector<int64_t> row_counts_;  // this step's, per ratio; 0: not dense
  int64_t layers_ = 0;
};

}  // namespace dsv4::cuda
