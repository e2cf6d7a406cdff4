// One attention sublayer (MODEL.md §2 "Attention"): low-rank queries, one shared KV head, the
// sliding window plus compressed entries (CSA: chosen by the Lightning Indexer; HCA: all),
// an attention sink, inverse RoPE and the grouped output projection.
#pragma once

#include <cstdint>

#include "cpu/batch.h"
#include "cpu/rope.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cpu {

class AttentionLayer {
 public:
  AttentionLayer(const ModelConfig& config, const AttentionWeights& weights, int64_t layer_index,
                 Numerics numerics);

  // x: [tokens, dim], the normed sublayer input; out: [tokens, dim]. Appends the chunk to each
  // sequence's state for this layer.
  void forward(const float* x, const TokenBatch& batch, float* out) const;

 private:
  struct Projections;
  Projections project(const float* x, const TokenBatch& batch) const;
  void attend_sequence(const Projections& p, const TokenBatch& batch, const TokenBatch::Span& span,
                       float* attention_output) const;
  void update_compressors(const Projections& p, const TokenBatch& batch,
                          const TokenBatch::Span& span) const;

  const ModelConfig& config_;
  const AttentionWeights& weights_;
  LayerSpec spec_;
  int64_t layer_index_;
  Numerics numerics_;
  Rope rope_;           // queries and window keys of this layer
  Rope compress_rope_;  // compressed entries and indexer queries
};

}  // namespace dsv4::cpu
