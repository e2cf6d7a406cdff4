#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/hadamard.h"
#include "core/quantize.h"
#include "core/thread_pool.h"
#include "cpu/activations.h"
#include "cpu/compressor.h"
#include "cpu/indexer.h"
#include "cpu/linear.h"
#include "cpu/norms.h"
#include "cpu/sparse_attention.h"

namespace dsv4::cpu {

struct AttentionLayer::Projections {
  std::vector<float> query;            // [T, H, d]
  std::vector<float> kv;               // [T, d]
  std::vector<float> compressor_kv;    // [T, width]
  std::vector<float> compressor_gate;  // [T, width]
  std::vector<float> indexer_query;    // [T, nI, dI]
  std::vector<float> indexer_weights;  // [T, nI]
  std::vector<float> indexer_kv;       // [T, 2·dI]
  std::vector<float> indexer_gate;     // [T, 2·dI]
};

namespace {

std::vector<float> apply_linear(const float* x, int64_t tokens, const LinearWeight& w,
                                Numerics numerics, bool round) {
  std::vector<float> y(size_t(tokens * w.rows));
  linear(x, tokens, w, numerics, y.data());
  if (round) round_activations(y.data(), y.size(), numerics);
  return y;
}

}  // namespace

AttentionLayer::AttentionLayer(const ModelConfig& config, const AttentionWeights& weights,
                               int64_t layer_index, Numerics numerics)
    : config_(config),
      weights_(weights),
      spec_(config.layers[size_t(layer_index)]),
      layer_index_(layer_index),
      numerics_(numerics),
      rope_(Rope::for_layer(config, spec_.compress_ratio > 0)),
      compress_rope_(Rope::for_layer(config, true)) {}

AttentionLayer::Projections AttentionLayer::project(const float* x, const TokenBatch& batch) const {
  const int64_t T = batch.tokens, H = config_.n_heads, d = config_.head_dim;
  const int64_t nope = config_.nope_head_dim();
  Projections p;

  std::vector<float> qr = apply_linear(x, T, weights_.wq_a, numerics_, true);
  rms_norm(qr.data(), T, config_.q_lora_rank, weights_.q_norm.data(), config_.norm_eps, numerics_,
           qr.data());
  p.query = apply_linear(qr.data(), T, weights_.wq_b, numerics_, true);
  unweighted_head_norm(p.query.data(), T * H, d, config_.norm_eps, numerics_);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      rope_.apply(p.query.data() + (t * H + h) * d + nope, batch.positions[size_t(t)], false,
                  numerics_);
    }
  }

  p.kv = apply_linear(x, T, weights_.wkv, numerics_, true);
  rms_norm(p.kv.data(), T, d, weights_.kv_norm.data(), config_.norm_eps, numerics_, p.kv.data());
  for (int64_t t = 0; t < T; ++t) {
    float* row = p.kv.data() + t * d;
    rope_.apply(row + nope, batch.positions[size_t(t)], false, numerics_);
    if (numerics_ == Numerics::kOfficial) fp8_round_trip(row, size_t(nope), kFp8KvBlock);
  }

  if (weights_.compressor) {
    p.compressor_kv = apply_linear(x, T, weights_.compressor->wkv, numerics_, false);
    p.compressor_gate = apply_linear(x, T, weights_.compressor->wgate, numerics_, false);
  }
  if (weights_.indexer) {
    const IndexerWeights& idx = *weights_.indexer;
    const int64_t nI = config_.index_n_heads, dI = config_.index_head_dim;
    p.indexer_query = apply_linear(qr.data(), T, idx.wq_b, numerics_, true);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < nI; ++h) {
        float* head = p.indexer_query.data() + (t * nI + h) * dI;
        compress_rope_.apply(head + dI - config_.rope_head_dim, batch.positions[size_t(t)], false,
                             numerics_);
        if (numerics_ == Numerics::kOfficial) {
          hadamard_transform(head, size_t(dI));
          round_activations(head, size_t(dI), numerics_);
          fp4_round_trip(head, size_t(dI));
        }
      }
    }
    p.indexer_weights = apply_linear(x, T, idx.weights_proj, numerics_, true);
    const float scale = float(1.0 / std::sqrt(double(dI)) / std::sqrt(double(nI)));
    for (float& w : p.indexer_weights) w = round_activation(w * scale, numerics_);
    p.indexer_kv = apply_linear(x, T, idx.compressor.wkv, numerics_, false);
    p.indexer_gate = apply_linear(x, T, idx.compressor.wgate, numerics_, false);
  }
  return p;
}

void AttentionLayer::update_compressors(const Projections& p, const TokenBatch& batch,
                                        const TokenBatch::Span& span) const {
  LayerState& state = span.state->layers[size_t(layer_index_)];
  const int64_t ratio = spec_.compress_ratio;
  const bool overlap = spec_.attention == AttentionKind::kCompressedSparse;
  const CompressorShape main_shape{ratio, config_.head_dim, overlap};
  const CompressorShape index_shape{ratio, config_.index_head_dim, true};
  std::vector<float> entry(size_t(std::max(config_.head_dim, config_.index_head_dim)));
  for (int64_t t = span.begin; t < span.end; ++t) {
    const int64_t position = batch.positions[size_t(t)];
    const int64_t w = main_shape.width();
    if (compressor_push(state.compressor, main_shape, *weights_.compressor, position,
                        p.compressor_kv.data() + t * w, p.compressor_gate.data() + t * w,
                        entry.data())) {
      finish_compressed_entry(entry.data(), main_shape, *weights_.compressor, compress_rope_,
                              position / ratio, EntryKind::kMainKv, config_.norm_eps, numerics_);
      state.compressed.append(entry.data());
    }
    if (!weights_.indexer) continue;
    const int64_t wi = index_shape.width();
    const CompressorWeights& ic = weights_.indexer->compressor;
    if (compressor_push(state.indexer_compressor, index_shape, ic, position,
                        p.indexer_kv.data() + t * wi, p.indexer_gate.data() + t * wi,
                        entry.data())) {
      finish_compressed_entry(entry.data(), index_shape, ic, compress_rope_, position / ratio,
                              EntryKind::kIndexKey, config_.norm_eps, numerics_);
      state.index_keys.append(entry.data());
    }
  }
}

void AttentionLayer::attend_sequence(const Projections& p, const TokenBatch& batch,
                                     const TokenBatch::Span& span, float* attention_output) const {
  LayerState& state = span.state->layers[size_t(layer_index_)];
  const int64_t H = config_.n_heads, d = config_.head_dim, W = config_.window_size;
  const int64_t start = batch.positions[size_t(span.begin)];
  const int64_t count = span.end - span.begin;

  // Window source: cached rows before the chunk, then the chunk's own rows.
  const int64_t first = std::max<int64_t>(0, start - (W - 1));
  std::vector<float> window_rows(size_t((start - first + count) * d));
  for (int64_t pos = first; pos < start; ++pos) {
    state.window.read(size_t(pos % W), window_rows.data() + (pos - first) * d);
  }
  std::copy_n(p.kv.data() + span.begin * d, count * d, window_rows.data() + (start - first) * d);
  for (int64_t pos = std::max(start, start + count - W); pos < start + count; ++pos) {
    state.window.write(size_t(pos % W), window_rows.data() + (pos - first) * d);
  }

  if (weights_.compressor) update_compressors(p, batch, span);
  const std::vector<float> entries = state.compressed.read_all();
  const std::vector<float> index_keys = state.index_keys.read_all();

  const float scale = float(1.0 / std::sqrt(double(d)));
  const int64_t nope = config_.nope_head_dim();
  ThreadPool::global().parallel_for(size_t(count), 1, [&](size_t begin, size_t end) {
    std::vector<const float*> rows;
    for (size_t i = begin; i < end; ++i) {
      const int64_t t = span.begin + int64_t(i);
      const int64_t pos = batch.positions[size_t(t)];
      // The reference's list: W window entries, oldest first, -1 (null) where the sequence is
      // shorter; then the compressed entries.
      rows.assign(size_t(W), nullptr);
      const int64_t oldest = std::max<int64_t>(0, pos - W + 1);
      for (int64_t k = oldest; k <= pos; ++k) {
        rows[size_t(k - oldest)] = window_rows.data() + (k - first) * d;
      }
      const int64_t ratio = spec_.compress_ratio;
      const int64_t visible = ratio > 0 ? (pos + 1) / ratio : 0;
      if (spec_.attention == AttentionKind::kCompressedSparse) {
        const int64_t nI = config_.index_n_heads, dI = config_.index_head_dim;
        for (int64_t e :
             indexer_select(p.indexer_query.data() + t * nI * dI, p.indexer_weights.data() + t * nI,
                            nI, dI, index_keys.data(), visible, config_.index_topk, numerics_)) {
          rows.push_back(entries.data() + e * d);
        }
      } else {
        for (int64_t e = 0; e < visible; ++e) rows.push_back(entries.data() + e * d);
      }
      for (int64_t h = 0; h < H; ++h) {
        float* out = attention_output + (t * H + h) * d;
        attend_head(p.query.data() + (t * H + h) * d, rows, d, scale, weights_.attn_sink[size_t(h)],
                    numerics_, out);
        rope_.apply(out + nope, pos, true, numerics_);
      }
    }
  });
}

void AttentionLayer::forward(const float* x, const TokenBatch& batch, float* out) const {
  const Projections p = project(x, batch);
  const int64_t T = batch.tokens;
  std::vector<float> attention_output(size_t(T * config_.n_heads * config_.head_dim));
  for (const TokenBatch::Span& span : batch.sequences) {
    attend_sequence(p, batch, span, attention_output.data());
  }
  std::vector<float> grouped(size_t(T * weights_.wo_a.rows));
  grouped_linear(attention_output.data(), T, config_.o_groups, weights_.wo_a, grouped.data());
  round_activations(grouped.data(), grouped.size(), numerics_);
  linear(grouped.data(), T, weights_.wo_b, numerics_, out);
  round_activations(out, size_t(T * config_.dim), numerics_);
}

}  // namespace dsv4::cpu
