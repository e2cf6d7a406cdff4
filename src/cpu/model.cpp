#include "cpu/model.h"

#include <algorithm>

#include "core/error.h"
#include "core/quantize.h"
#include "cpu/activations.h"
#include "cpu/hyper_connection.h"
#include "cpu/linear.h"
#include "cpu/moe.h"
#include "cpu/norms.h"

namespace dsv4::cpu {
namespace {

TokenBatch make_batch(std::span<const Model::Chunk> chunks, const ModelConfig& config) {
  TokenBatch batch;
  for (const Model::Chunk& chunk : chunks) {
    const auto begin = int64_t(batch.ids.size());
    const int64_t start = chunk.sequence->length;
    if (start + int64_t(chunk.ids.size()) > config.max_seq_len) {
      fail("sequence too long: {} tokens after this chunk, the model allows {}",
           start + int64_t(chunk.ids.size()), config.max_seq_len);
    }
    for (size_t i = 0; i < chunk.ids.size(); ++i) {
      const int32_t id = chunk.ids[i];
      if (id < 0 || id >= config.vocab_size) {
        fail("token id {} is outside the vocabulary [0, {})", id, config.vocab_size);
      }
      batch.ids.push_back(id);
      batch.positions.push_back(start + int64_t(i));
    }
    batch.sequences.push_back({chunk.sequence, begin, int64_t(batch.ids.size())});
  }
  batch.tokens = int64_t(batch.ids.size());
  return batch;
}

// Official numerics quantize KV rows in 64-wide FP8 blocks and rotate index vectors with a
// Hadamard transform before FP4 (32-wide) blocks; fp32 numerics need neither.
void check_official_shapes(const ModelConfig& config) {
  if (config.nope_head_dim() % int64_t(kFp8KvBlock) != 0) {
    fail("{}: official numerics need head_dim - rope_head_dim ({}) to be a multiple of {}",
         config.source, config.nope_head_dim(), kFp8KvBlock);
  }
  const int64_t index_dim = config.index_head_dim;
  const bool has_csa = std::any_of(
      config.layers.begin(), config.layers.end(),
      [](const LayerSpec& l) { return l.attention == AttentionKind::kCompressedSparse; });
  if (has_csa && (index_dim < int64_t(kFp4Block) || (index_dim & (index_dim - 1)) != 0)) {
    fail("{}: official numerics need index_head_dim ({}) to be a power of two of at least {}",
         config.source, index_dim, kFp4Block);
  }
}

}  // namespace

Model::Model(const ModelConfig& config, const ModelWeights& weights, Numerics numerics)
    : config_(config), weights_(weights), numerics_(numerics) {
  if (numerics == Numerics::kOfficial) check_official_shapes(config);
  for (int64_t layer = 0; layer < config.n_layers; ++layer) {
    attention_.emplace_back(config, weights.blocks[size_t(layer)].attn, layer, numerics);
  }
}

std::unique_ptr<SequenceState> Model::new_sequence() const {
  return std::make_unique<SequenceState>(make_sequence_state(config_, numerics_));
}

std::vector<float> Model::forward(std::span<const Chunk> chunks) {
  const TokenBatch batch = make_batch(chunks, config_);
  const int64_t T = batch.tokens, D = config_.dim, hc = config_.hc_mult;
  if (T == 0) return {};

  std::vector<float> streams(size_t(T * hc * D));
  for (int64_t t = 0; t < T; ++t) {
    float* first = streams.data() + t * hc * D;
    for (int64_t i = 0; i < D; ++i) first[i] = weights_.embed.dequantized(batch.ids[size_t(t)], i);
    for (int64_t j = 1; j < hc; ++j) std::copy_n(first, D, first + j * D);
  }

  std::vector<float> collapsed(size_t(T * D)), normed(size_t(T * D)), sublayer(size_t(T * D));
  for (int64_t layer = 0; layer < config_.n_layers; ++layer) {
    const BlockWeights& block = weights_.blocks[size_t(layer)];
    HyperConnectionMix mix = hyper_connection_collapse(streams.data(), T, config_, block.hc_attn,
                                                       numerics_, collapsed.data());
    rms_norm(collapsed.data(), T, D, block.attn_norm.data(), config_.norm_eps, numerics_,
             normed.data());
    attention_[size_t(layer)].forward(normed.data(), batch, sublayer.data());
    hyper_connection_expand(streams.data(), sublayer.data(), T, config_, mix, numerics_);

    mix = hyper_connection_collapse(streams.data(), T, config_, block.hc_ffn, numerics_,
                                    collapsed.data());
    rms_norm(collapsed.data(), T, D, block.ffn_norm.data(), config_.norm_eps, numerics_,
             normed.data());
    moe_forward(normed.data(), batch.ids.data(), T, config_, block.ffn,
                config_.layers[size_t(layer)].hash_routing, numerics_, sublayer.data());
    hyper_connection_expand(streams.data(), sublayer.data(), T, config_, mix, numerics_);
  }
  for (const TokenBatch::Span& span : batch.sequences) span.state->length += span.end - span.begin;

  hyper_connection_head(streams.data(), T, config_, weights_.hc_head, numerics_, collapsed.data());
  rms_norm(collapsed.data(), T, D, weights_.norm.data(), config_.norm_eps, numerics_,
           normed.data());
  std::vector<float> logits(size_t(T * config_.vocab_size));
  linear(normed.data(), T, weights_.head, Numerics::kFp32, logits.data());
  return logits;
}

}  // namespace dsv4::cpu
