#include "cuda/model/cuda_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cuda/kernels/attention/compressor.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/kv_write.h"
#include "cuda/kernels/attention/sparse_attention.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/plain_gemm.h"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/kernels/moe/combine.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/kernels/moe/router.h"
#include "cuda/kernels/moe/swiglu.h"
#include "cuda/kernels/norm_rope_mhc/embedding.h"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "cuda/kernels/norm_rope_mhc/rms_norm.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "cuda/model/device_weights.h"
#include "cuda/model/glue.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

constexpr int32_t kBlockRows = 64;

}  // namespace

struct CudaModel::State {
  cudaStream_t stream = nullptr;
  DeviceWeights w;
  std::unique_ptr<KvCache> cache;
  RopeTable rope, compress_rope;
  HcShape hc;
  int64_t max_tokens = 0, max_length = 0;
  std::vector<int64_t> lengths;  // per slot; -1: free
  int64_t score_stride = 0;

  // Step metadata: ids, slot, position, chunk_begin, chunk_end ([5][max_tokens]).
  DeviceBuffer<int32_t> meta;
  std::vector<int32_t> host_meta;
  TokenBatchView batch;
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;

  // Residual streams and the mHC site.
  DeviceBuffer<uint16_t> streams, collapsed, normed, sublayer;
  DeviceBuffer<float> hc_workspace, post, comb, x_f32;
  // Attention.
  DeviceBuffer<uint16_t> qr, q, kv, idx_q, idx_w, scores, attn_out, grouped;
  DeviceBuffer<float> qr_f32, comp_kv, comp_gate, idx_kv, idx_gate, attn_f32, grouped_f32;
  DeviceBuffer<uint8_t> chunk_rows;
  DeviceBuffer<int32_t> indices;
  // MoE.
  DeviceBuffer<float> router_logits, route_weights, gathered_f32, h_f32;
  DeviceBuffer<int32_t> experts, counts, offsets, order, position;
  DeviceBuffer<uint16_t> gathered, g, u, h, expert_out, shared_out;
  std::vector<int32_t> host_offsets;
  // FP8 activations of every FP8/FP4 linear; logits.
  DeviceBuffer<uint8_t> fp8_codes;
  DeviceBuffer<float> fp8_scales, logits;

  State(const ModelConfig& c, const ModelWeights& weights)
      : w(upload_weights(c, weights)),
        rope(rope_inv_freq_for_layer(c, false)),
        compress_rope(rope_inv_freq_for_layer(c, true)),
        hc(hc_shape(c)) {}

  Fp8ActivationBuffer scratch() { return {fp8_codes.data(), fp8_scales.data()}; }
  void lin(const float* x, int64_t m, const DeviceLinear& weight, uint16_t* bf16, float* f32) {
    linear(x, m, weight.view(), scratch(), {f32, bf16}, stream);
  }
};

CudaModel::CudaModel(const ModelConfig& config, const ModelWeights& weights, int32_t max_sequences,
                     int64_t max_tokens_per_step, int64_t max_length)
    : config_(config), s_(std::make_unique<State>(config, weights)) {
  State& s = *s_;
  const ModelConfig& c = config;
  if (max_tokens_per_step <= 0 || max_length <= 0 || max_sequences <= 0) {
    fail("CudaModel: bad limits ({} sequences, {} tokens per step, max length {})", max_sequences,
         max_tokens_per_step, max_length);
  }
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  s.max_tokens = max_tokens_per_step;
  s.max_length = max_length;
  s.lengths.assign(size_t(max_sequences), -1);

  // Cache pools: every slot at max_length.
  int64_t kv_blocks = 0, index_blocks = 0, max_visible = 0;
  for (const LayerSpec& spec : c.layers) {
    kv_blocks += ceil_div(c.window_size, kBlockRows);
    if (spec.compress_ratio > 0) {
      const int64_t entries = ceil_div(max_length, spec.compress_ratio);
      kv_blocks += ceil_div(entries, kBlockRows);
      if (spec.attention == AttentionKind::kCompressedSparse) {
        index_blocks += ceil_div(entries, kBlockRows);
        max_visible = std::max(max_visible, entries);
      }
    }
  }
  KvCacheConfig kc = kv_cache_config(c, max_sequences, max_length, kv_blocks * max_sequences,
                                     std::max<int64_t>(1, index_blocks * max_sequences));
  kc.block_rows = kBlockRows;
  s.cache = std::make_unique<KvCache>(kc);
  s.score_stride = std::max<int64_t>(8, ceil_div(max_visible, 8) * 8);

  const int64_t T = max_tokens_per_step, D = c.dim, H = c.n_heads, d = c.head_dim;
  const int64_t K = c.n_activated_experts, E = c.n_routed_experts;
  const int64_t nI = std::max<int64_t>(1, c.index_n_heads);
  const int64_t dI = std::max<int64_t>(32, c.index_head_dim);
  const int64_t topk = std::max<int64_t>(1, c.index_topk);
  const int64_t grouped_width = c.o_groups * c.o_lora_rank;
  int64_t inter = 0, max_cols = std::max({D, c.q_lora_rank, H * d, grouped_width});
  for (const BlockWeights& b : weights.blocks) {
    inter = std::max({inter, b.ffn.shared.w1.rows});
    for (const ExpertWeights& e : b.ffn.experts) inter = std::max(inter, e.w1.rows);
  }
  max_cols = std::max(max_cols, inter);
  const int64_t rows = T * std::max<int64_t>(1, K);

  s.meta = DeviceBuffer<int32_t>(size_t(5 * T));
  s.host_meta.resize(size_t(5 * T));
  s.ids = s.meta.data();
  s.positions = s.meta.data() + 2 * T;
  s.batch.slot = s.meta.data() + T;
  s.batch.position = s.meta.data() + 2 * T;
  s.batch.chunk_begin = s.meta.data() + 3 * T;
  s.batch.chunk_end = s.meta.data() + 4 * T;

  s.streams = DeviceBuffer<uint16_t>(size_t(T * c.hc_mult * D));
  s.collapsed = DeviceBuffer<uint16_t>(size_t(T * D));
  s.normed = DeviceBuffer<uint16_t>(size_t(T * D));
  s.sublayer = DeviceBuffer<uint16_t>(size_t(T * D));
  s.hc_workspace = DeviceBuffer<float>(size_t(hc_workspace_floats(T, s.hc)));
  s.post = DeviceBuffer<float>(size_t(T * c.hc_mult));
  s.comb = DeviceBuffer<float>(size_t(T * c.hc_mult * c.hc_mult));
  s.x_f32 = DeviceBuffer<float>(size_t(T * D));

  s.qr = DeviceBuffer<uint16_t>(size_t(T * c.q_lora_rank));
  s.qr_f32 = DeviceBuffer<float>(size_t(T * c.q_lora_rank));
  s.q = DeviceBuffer<uint16_t>(size_t(T * H * d));
  s.kv = DeviceBuffer<uint16_t>(size_t(T * d));
  s.chunk_rows = DeviceBuffer<uint8_t>(size_t(T * s.cache->kv_row_bytes()));
  s.comp_kv = DeviceBuffer<float>(size_t(T * 2 * d));
  s.comp_gate = DeviceBuffer<float>(size_t(T * 2 * d));
  s.idx_q = DeviceBuffer<uint16_t>(size_t(T * nI * dI));
  s.idx_w = DeviceBuffer<uint16_t>(size_t(T * nI));
  s.idx_kv = DeviceBuffer<float>(size_t(T * 2 * dI));
  s.idx_gate = DeviceBuffer<float>(size_t(T * 2 * dI));
  s.scores = DeviceBuffer<uint16_t>(size_t(T * s.score_stride));
  s.indices = DeviceBuffer<int32_t>(size_t(T * topk));
  s.attn_out = DeviceBuffer<uint16_t>(size_t(T * H * d));
  s.attn_f32 = DeviceBuffer<float>(size_t(T * H * d));
  s.grouped = DeviceBuffer<uint16_t>(size_t(T * grouped_width));
  s.grouped_f32 = DeviceBuffer<float>(size_t(T * grouped_width));

  s.router_logits = DeviceBuffer<float>(size_t(T * E));
  s.route_weights = DeviceBuffer<float>(size_t(rows));
  s.experts = DeviceBuffer<int32_t>(size_t(rows));
  s.counts = DeviceBuffer<int32_t>(size_t(E));
  s.offsets = DeviceBuffer<int32_t>(size_t(E + 1));
  s.host_offsets.resize(size_t(E + 1));
  s.order = DeviceBuffer<int32_t>(size_t(rows));
  s.position = DeviceBuffer<int32_t>(size_t(rows));
  s.gathered = DeviceBuffer<uint16_t>(size_t(rows * D));
  s.gathered_f32 = DeviceBuffer<float>(size_t(rows * D));
  s.g = DeviceBuffer<uint16_t>(size_t(rows * inter));
  s.u = DeviceBuffer<uint16_t>(size_t(rows * inter));
  s.h = DeviceBuffer<uint16_t>(size_t(rows * inter));
  s.h_f32 = DeviceBuffer<float>(size_t(rows * inter));
  s.expert_out = DeviceBuffer<uint16_t>(size_t(rows * D));
  s.shared_out = DeviceBuffer<uint16_t>(size_t(T * D));

  s.fp8_codes = DeviceBuffer<uint8_t>(size_t(rows * max_cols));
  s.fp8_scales = DeviceBuffer<float>(size_t(rows * ceil_div(max_cols, 128)));
  s.logits = DeviceBuffer<float>(size_t(T * c.vocab_size));
}

CudaModel::~CudaModel() {
  if (s_ && s_->stream) cudaStreamDestroy(s_->stream);
}

int32_t CudaModel::admit() {
  const int32_t slot = s_->cache->admit(s_->stream);
  s_->lengths[size_t(slot)] = 0;
  return slot;
}

void CudaModel::release(int32_t slot) {
  if (slot < 0 || size_t(slot) >= s_->lengths.size() || s_->lengths[size_t(slot)] < 0) {
    fail("CudaModel::release: slot {} is not admitted", slot);
  }
  DSV4_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  s_->cache->release(slot);
  s_->lengths[size_t(slot)] = -1;
}

int64_t CudaModel::length(int32_t slot) const {
  return s_->lengths.at(size_t(slot));
}

std::vector<float> CudaModel::forward(std::span<const Chunk> chunks) {
  State& s = *s_;
  const ModelConfig& c = config_;
  int64_t total = 0;
  for (const Chunk& chunk : chunks) total += int64_t(chunk.ids.size());
  if (total == 0) return {};
  if (total > s.max_tokens) fail("CudaModel: {} tokens in a step, at most {}", total, s.max_tokens);

  const int64_t Tmax = s.max_tokens;
  std::vector<bool> seen(s.lengths.size(), false);
  int32_t t = 0;
  for (const Chunk& chunk : chunks) {
    const int32_t slot = chunk.slot;
    if (slot < 0 || size_t(slot) >= s.lengths.size() || s.lengths[size_t(slot)] < 0) {
      fail("CudaModel: slot {} is not admitted", slot);
    }
    if (seen[size_t(slot)]) fail("CudaModel: slot {} appears twice in one step", slot);
    seen[size_t(slot)] = true;
    const int64_t start = s.lengths[size_t(slot)];
    const auto count = int64_t(chunk.ids.size());
    if (start + count > std::min(s.max_length, c.max_seq_len)) {
      fail("CudaModel: sequence too long: {} tokens after this chunk", start + count);
    }
    const int32_t begin = t;
    for (int64_t i = 0; i < count; ++i, ++t) {
      const int32_t id = chunk.ids[size_t(i)];
      if (id < 0 || id >= c.vocab_size) fail("token id {} is outside the vocabulary", id);
      s.host_meta[size_t(t)] = id;
      s.host_meta[size_t(Tmax + t)] = slot;
      s.host_meta[size_t(2 * Tmax + t)] = int32_t(start + i);
      s.host_meta[size_t(3 * Tmax + t)] = begin;
      s.host_meta[size_t(4 * Tmax + t)] = begin + int32_t(count);
    }
  }
  for (const Chunk& chunk : chunks) {
    if (!chunk.ids.empty()) {
      s.cache->reserve(chunk.slot, s.lengths[size_t(chunk.slot)] + int64_t(chunk.ids.size()),
                       s.stream);
    }
  }
  const int32_t T = t;
  s.batch.tokens = T;
  DSV4_CUDA_CHECK(cudaMemcpyAsync(s.meta.data(), s.host_meta.data(),
                                  s.host_meta.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  s.stream));

  const int64_t D = c.dim;
  embed_into_streams(s.w.embed.data(), s.ids, T, D, c.hc_mult, s.streams.data(), s.stream);
  const auto eps = float(c.norm_eps);
  for (int64_t layer = 0; layer < c.n_layers; ++layer) {
    const DeviceBlock& b = s.w.blocks[size_t(layer)];
    hc_collapse(s.streams.data(), T, s.hc, b.hc_attn.params(), s.hc_workspace.data(),
                s.collapsed.data(), s.post.data(), s.comb.data(), s.stream);
    rms_norm(s.collapsed.data(), T, D, b.attn_norm.data(), eps, s.normed.data(), s.stream);
    attention(layer, T);
    hc_expand(s.streams.data(), s.sublayer.data(), s.post.data(), s.comb.data(), T, s.hc, s.stream);

    hc_collapse(s.streams.data(), T, s.hc, b.hc_ffn.params(), s.hc_workspace.data(),
                s.collapsed.data(), s.post.data(), s.comb.data(), s.stream);
    rms_norm(s.collapsed.data(), T, D, b.ffn_norm.data(), eps, s.normed.data(), s.stream);
    moe(layer, T);
    hc_expand(s.streams.data(), s.sublayer.data(), s.post.data(), s.comb.data(), T, s.hc, s.stream);
  }
  hc_head_collapse(s.streams.data(), T, s.hc, s.w.hc_head.params(), s.hc_workspace.data(),
                   s.collapsed.data(), s.stream);
  rms_norm(s.collapsed.data(), T, D, s.w.norm.data(), eps, s.normed.data(), s.stream);
  bf16_to_f32(s.normed.data(), T * D, s.x_f32.data(), s.stream);
  plain_gemm(s.x_f32.data(), T, s.w.head.view(), {s.logits.data(), nullptr}, s.stream);

  std::vector<float> logits(size_t(T * c.vocab_size));
  DSV4_CUDA_CHECK(cudaMemcpyAsync(logits.data(), s.logits.data(), logits.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, s.stream));
  DSV4_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  for (const Chunk& chunk : chunks) s.lengths[size_t(chunk.slot)] += int64_t(chunk.ids.size());
  return logits;
}

// src/cpu/attention.cpp step by step. Next steps: fuse the bf16 -> fp32 widenings into the
// GEMM prologues and the norms / RoPE into their epilogues.
void CudaModel::attention(int64_t layer, int32_t T) {
  State& s = *s_;
  const ModelConfig& c = config_;
  const DeviceAttention& a = s.w.blocks[size_t(layer)].attn;
  const LayerSpec& spec = c.layers[size_t(layer)];
  const int64_t D = c.dim, H = c.n_heads, d = c.head_dim, rd = c.rope_head_dim;
  const auto eps = float(c.norm_eps);
  const RopeTable& rope = spec.compress_ratio > 0 ? s.compress_rope : s.rope;
  cudaStream_t st = s.stream;

  bf16_to_f32(s.normed.data(), T * D, s.x_f32.data(), st);
  // Queries.
  s.lin(s.x_f32.data(), T, a.wq_a, s.qr.data(), nullptr);
  rms_norm(s.qr.data(), T, c.q_lora_rank, a.q_norm.data(), eps, s.qr.data(), st);
  bf16_to_f32(s.qr.data(), T * c.q_lora_rank, s.qr_f32.data(), st);
  s.lin(s.qr_f32.data(), T, a.wq_b, s.q.data(), nullptr);
  unweighted_head_norm(s.q.data(), T * H, d, eps, st);
  apply_rope(s.q.data(), T, H, d, H * d, rope, s.positions, false, st);
  // The shared KV row.
  s.lin(s.x_f32.data(), T, a.wkv, s.kv.data(), nullptr);
  rms_norm(s.kv.data(), T, d, a.kv_norm.data(), eps, s.kv.data(), st);
  apply_rope(s.kv.data(), T, 1, d, d, rope, s.positions, false, st);
  KvWriteArgs kw;
  kw.batch = s.batch;
  kw.kv = s.kv.data();
  kw.head_dim = int32_t(d);
  kw.rope_dim = int32_t(rd);
  kw.chunk_rows = s.chunk_rows.data();
  kw.window = int32_t(c.window_size);
  write_kv_rows(kw, st);

  const auto L = int32_t(layer);
  const bool sparse = spec.attention == AttentionKind::kCompressedSparse;
  if (a.compressor) {
    s.lin(s.x_f32.data(), T, a.compressor->wkv, nullptr, s.comp_kv.data());
    s.lin(s.x_f32.data(), T, a.compressor->wgate, nullptr, s.comp_gate.data());
    CompressorArgs ca;
    ca.batch = s.batch;
    ca.kv = s.comp_kv.data();
    ca.gate = s.comp_gate.data();
    ca.ape = a.compressor->ape.data();
    ca.norm_weight = a.compressor->norm.data();
    ca.rope_inv_freq = s.compress_rope.inv_freq();
    ca.state = s.cache->compressor_state(L, false);
    ca.out = s.cache->entry_rows(L);
    ca.kind = CompressedKind::kMainKv;
    ca.ratio = int32_t(spec.compress_ratio);
    ca.dim = int32_t(d);
    ca.rope_dim = int32_t(rd);
    ca.overlap = sparse;
    ca.norm_eps = eps;
    compressor_step(ca, st);
  }
  IndexerArgs ia;
  if (a.indexer) {
    const DeviceIndexer& idx = *a.indexer;
    const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
    s.lin(s.qr_f32.data(), T, idx.wq_b, s.idx_q.data(), nullptr);
    apply_rope(s.idx_q.data(), T, nI, dI, nI * dI, s.compress_rope, s.positions, false, st);
    indexer_query_rotate(s.idx_q.data(), T * nI, dI, st);
    s.lin(s.x_f32.data(), T, idx.weights_proj, s.idx_w.data(), nullptr);
    scale_bf16(s.idx_w.data(), T * nI, float(1.0 / std::sqrt(double(dI)) / std::sqrt(double(nI))),
               st);
    s.lin(s.x_f32.data(), T, idx.compressor.wkv, nullptr, s.idx_kv.data());
    s.lin(s.x_f32.data(), T, idx.compressor.wgate, nullptr, s.idx_gate.data());
    CompressorArgs ca;
    ca.batch = s.batch;
    ca.kv = s.idx_kv.data();
    ca.gate = s.idx_gate.data();
    ca.ape = idx.compressor.ape.data();
    ca.norm_weight = idx.compressor.norm.data();
    ca.rope_inv_freq = s.compress_rope.inv_freq();
    ca.state = s.cache->compressor_state(L, true);
    ca.out = s.cache->index_key_rows(L);
    ca.kind = CompressedKind::kIndexKey;
    ca.ratio = int32_t(spec.compress_ratio);
    ca.dim = int32_t(dI);
    ca.rope_dim = int32_t(rd);
    ca.overlap = true;
    ca.norm_eps = eps;
    compressor_step(ca, st);

    ia.batch = s.batch;
    ia.q = s.idx_q.data();
    ia.weights = s.idx_w.data();
    ia.keys = s.cache->index_key_rows(L);
    ia.heads = int32_t(nI);
    ia.dim = int32_t(dI);
    ia.ratio = int32_t(spec.compress_ratio);
    ia.topk = int32_t(c.index_topk);
    ia.max_visible = int32_t(ceil_div(s.max_length, spec.compress_ratio));
    ia.scores = s.scores.data();
    ia.score_stride = s.score_stride;
    ia.indices = s.indices.data();
    indexer_select(ia, st);
  }

  SparseAttentionArgs sa;
  sa.batch = s.batch;
  sa.q = s.q.data();
  sa.sink = a.attn_sink.data();
  sa.out = s.attn_out.data();
  sa.heads = int32_t(H);
  sa.head_dim = int32_t(d);
  sa.rope_dim = int32_t(rd);
  sa.scale = float(1.0 / std::sqrt(double(d)));
  sa.window = int32_t(c.window_size);
  sa.chunk_rows = s.chunk_rows.data();
  sa.ring = s.cache->window_rows(L);
  if (a.indexer) {
    sa.source = CompressedSource::kList;
    sa.entries = s.cache->entry_rows(L);
    sa.list = s.indices.data();
    sa.list_stride = int32_t(c.index_topk);
    sa.list_len = int32_t(c.index_topk);
  } else if (a.compressor) {
    sa.source = CompressedSource::kAll;
    sa.entries = s.cache->entry_rows(L);
    sa.ratio = int32_t(spec.compress_ratio);
  }
  sparse_attention(sa, st);
  commit_window_rows(s.batch, s.chunk_rows.data(), s.cache->window_rows(L), int32_t(c.window_size),
                     st);

  apply_rope(s.attn_out.data(), T, H, d, H * d, rope, s.positions, true, st);
  bf16_to_f32(s.attn_out.data(), T * H * d, s.attn_f32.data(), st);
  grouped_gemm(s.attn_f32.data(), T, c.o_groups, a.wo_a.view(), {nullptr, s.grouped.data()}, st);
  bf16_to_f32(s.grouped.data(), T * a.wo_a.rows, s.grouped_f32.data(), st);
  s.lin(s.grouped_f32.data(), T, a.wo_b, s.sublayer.data(), nullptr);
}

// src/cpu/moe.cpp. The expert offsets are read back (one sync per layer) to size each expert's
// GEMM; next step: one grouped GEMM launch over all experts reading the offsets on the device.
void CudaModel::moe(int64_t layer, int32_t T) {
  State& s = *s_;
  const ModelConfig& c = config_;
  const DeviceMoe& m = s.w.blocks[size_t(layer)].ffn;
  const bool hash = c.layers[size_t(layer)].hash_routing;
  const int64_t D = c.dim, K = c.n_activated_experts, E = c.n_routed_experts;
  const auto limit = float(c.swiglu_limit);
  cudaStream_t st = s.stream;

  bf16_to_f32(s.normed.data(), T * D, s.x_f32.data(), st);
  plain_gemm(s.x_f32.data(), T, m.gate.view(), {s.router_logits.data(), nullptr}, st);
  RouterShape shape{E, K, parse_score_func(c.score_func), float(c.route_scale)};
  moe_route(s.router_logits.data(), T, shape,
            hash || m.gate_bias.size() == 0 ? nullptr : m.gate_bias.data(),
            hash ? m.tid2eid.data() : nullptr, hash ? s.ids : nullptr, s.experts.data(),
            s.route_weights.data(), st);
  moe_group(s.experts.data(), T, K, E, s.counts.data(), s.offsets.data(), s.order.data(),
            s.position.data(), st);
  DSV4_CUDA_CHECK(cudaMemcpyAsync(s.host_offsets.data(), s.offsets.data(),
                                  s.host_offsets.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                  st));
  moe_gather_rows(s.normed.data(), s.order.data(), T, K, D, s.gathered.data(), st);
  bf16_to_f32(s.gathered.data(), T * K * D, s.gathered_f32.data(), st);
  DSV4_CUDA_CHECK(cudaStreamSynchronize(st));

  const int64_t inter = m.experts.empty() ? 0 : m.experts[0].w1.rows;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t off = s.host_offsets[size_t(e)], n = s.host_offsets[size_t(e + 1)] - off;
    if (n == 0) continue;
    const DeviceExpert& ex = m.experts[size_t(e)];
    s.lin(s.gathered_f32.data() + off * D, n, ex.w1, s.g.data() + off * inter, nullptr);
    s.lin(s.gathered_f32.data() + off * D, n, ex.w3, s.u.data() + off * inter, nullptr);
  }
  swiglu(s.g.data(), inter, s.u.data(), inter, T * K, inter, s.route_weights.data(), s.order.data(),
         limit, s.h.data(), st);
  bf16_to_f32(s.h.data(), T * K * inter, s.h_f32.data(), st);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t off = s.host_offsets[size_t(e)], n = s.host_offsets[size_t(e + 1)] - off;
    if (n == 0) continue;
    s.lin(s.h_f32.data() + off * inter, n, m.experts[size_t(e)].w2, s.expert_out.data() + off * D,
          nullptr);
  }

  const int64_t shared_inter = m.shared.w1.rows;
  s.lin(s.x_f32.data(), T, m.shared.w1, s.g.data(), nullptr);
  s.lin(s.x_f32.data(), T, m.shared.w3, s.u.data(), nullptr);
  swiglu(s.g.data(), shared_inter, s.u.data(), shared_inter, T, shared_inter, nullptr, nullptr,
         limit, s.h.data(), st);
  bf16_to_f32(s.h.data(), T * shared_inter, s.h_f32.data(), st);
  s.lin(s.h_f32.data(), T, m.shared.w2, s.shared_out.data(), nullptr);
  moe_combine(s.expert_out.data(), s.experts.data(), s.position.data(), s.shared_out.data(), T, K,
              D, s.sublayer.data(), st);
}

}  // namespace dsv4::cuda
