// The KV compressor (MODEL.md §2 step 5) as a stream: tokens arrive one at a time in position
// order; when a token completes a window of `ratio` tokens, one entry is pooled with a
// per-channel softmax over the window's gate logits. Overlapping compressors (CSA) pool 2·ratio
// slots: the previous window's tokens on channels [0, d) and the current window's on [d, 2d).
#pragma once

#include <cstdint>

#include "cpu/rope.h"
#include "cpu/sequence_state.h"
#include "model/weights.h"

namespace dsv4::cpu {

struct CompressorShape {
  int64_t ratio;
  int64_t dim;   // entry width d
  bool overlap;  // CSA compressors
  int64_t width() const { return overlap ? 2 * dim : dim; }
};

// Feeds the projections of the token at `position` (kv, gate: [width] in fp32; the position
// bias is added here). Returns true and writes the pooled entry [dim] when the token
// completes a window.
bool compressor_push(CompressorState& state, const CompressorShape& shape,
                     const CompressorWeights& weights, int64_t position, const float* kv,
                     const float* gate, float* pooled);

// What happens to a pooled entry before it is stored: RMSNorm, RoPE at the window's first
// position, then the main compressor's FP8 round trip or the indexer's Hadamard + FP4 round
// trip (the latter two only in official numerics; the stores apply the quantization).
enum class EntryKind { kMainKv, kIndexKey };
void finish_compressed_entry(float* entry, const CompressorShape& shape,
                             const CompressorWeights& weights, const Rope& rope,
                             int64_t window_index, EntryKind kind, double norm_eps,
                             Numerics numerics);

}  // namespace dsv4::cpu
