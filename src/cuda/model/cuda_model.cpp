#include "cuda/model/cuda_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cuda/kernels/attention/compressor.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/kv_write.h"
#include "cuda/kernels/attention/sparse_attention.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/plain_gemm.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/kernels/norm_rope_mhc/embedding.h"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "cuda/kernels/norm_rope_mhc/rms_norm.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "cuda/model/cuda_model_state.h"
#include "cuda/model/device_weights.h"
#include "cuda/model/glue.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

// The most rows a query token of this layer attends to: the window plus every compressed entry
// it can see (CSA: the indexer's top-k; HCA: all entries up to max_length).
int32_t attention_rows_bound(const ModelConfig& c, const LayerSpec& spec, int64_t max_length) {
  int64_t rows = c.window_size;
  if (spec.attention == AttentionKind::kCompressedSparse) {
    rows += c.index_topk;
  } else if (spec.compress_ratio > 0) {
    rows += max_length / spec.compress_ratio;
  }
  return int32_t(rows);
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

constexpr int32_t kBlockRows = 64;
// The step metadata's int32 blocks of max_tokens: ids, slots, positions, chunk begins, chunk
// ends, then the dense attention rows' bases.
constexpr int64_t kBatchMetaBlocks = 5;

}  // namespace

void CudaModel::State::lin(const uint16_t* x, int64_t m, const DeviceLinear& weight, uint16_t* bf16,
                           float* f32, bool on_side) {
  LinearScratch& lane = on_side ? side_lane : main_lane;
  cudaStream_t on = on_side ? side.stream : stream;
  if (block_scaled(weight.format)) {
    quantize_activations_fp8(x, m, weight.cols, lane.codes.data(), lane.scales.data(), on);
    scaled_gemm(lane.codes.data(), lane.scales.data(), m, weight.view(), {f32, bf16}, on,
                lane.split());
  } else if (bf16_gemm_available(weight.view(), 1)) {
    bf16_gemm(x, m, 1, weight.view(), {f32, bf16}, on, lane.split());
  } else {
    bf16_to_f32(x, m * weight.cols, lane.wide.data(), on);
    plain_gemm(lane.wide.data(), m, weight.view(), {f32, bf16}, on);
  }
}

void CudaModel::State::Branch::create() {
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
  DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&joined, cudaEventDisableTiming));
}

void CudaModel::State::Branch::destroy() {
  if (forked) cudaEventDestroy(forked);
  if (joined) cudaEventDestroy(joined);
  if (stream) cudaStreamDestroy(stream);
}

void CudaModel::State::Branch::fork(cudaStream_t from) {
  DSV4_CUDA_CHECK(cudaEventRecord(forked, from));
  DSV4_CUDA_CHECK(cudaStreamWaitEvent(stream, forked));
}

void CudaModel::State::Branch::join(cudaStream_t into) {
  DSV4_CUDA_CHECK(cudaEventRecord(joined, stream));
  DSV4_CUDA_CHECK(cudaStreamWaitEvent(into, joined));
}

void CudaModel::State::fork_side() {
  side.fork(stream);
}

void CudaModel::State::join_side() {
  side.join(stream);
}

CudaModel::CudaModel(const ModelConfig& config, const ModelWeights& weights,
                     const CudaModelLimits& limits)
    : CudaModel(config, upload_weights(config, weights), limits) {}

CudaModel::CudaModel(const ModelConfig& config, DeviceWeights weights,
                     const CudaModelLimits& limits)
    : config_(config), s_(std::make_unique<State>(config, std::move(weights))) {
  State& s = *s_;
  const ModelConfig& c = config_;
  const int32_t max_sequences = limits.max_sequences;
  const int64_t max_tokens_per_step = limits.max_tokens_per_step;
  const int64_t max_length = limits.max_length;
  if (max_tokens_per_step <= 0 || max_length <= 0 || max_sequences <= 0) {
    fail("CudaModel: bad limits ({} sequences, {} tokens per step, max length {})", max_sequences,
         max_tokens_per_step, max_length);
  }
  if (int64_t(s.w.blocks.size()) != c.n_layers) {
    fail("CudaModel: {} layers of weights for a {}-layer model", s.w.blocks.size(), c.n_layers);
  }
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  s.side.create();
  s.hc_weights.create();
  s.max_tokens = max_tokens_per_step;
  s.max_length = max_length;
  s.lengths.assign(size_t(max_sequences), -1);
  s.fed_in_step.assign(size_t(max_sequences), -1);

  // Cache pools: every slot at max_length.
  // HCA entries also as bf16 copies where decode reads them (DenseAttentionRows).
  const bool hca_copies = limits.dense_hca_decode && dense_attention_applies(c);
  s.cache = std::make_unique<KvCache>(
      kv_cache_config_every_slot_full(c, max_sequences, max_length, kBlockRows, hca_copies));
  int64_t max_visible = 0;
  for (const LayerSpec& spec : c.layers) {
    if (spec.attention == AttentionKind::kCompressedSparse) {
      max_visible = std::max(max_visible, ceil_div(max_length, spec.compress_ratio));
    }
  }
  s.score_stride = std::max<int64_t>(8, ceil_div(max_visible, 8) * 8);

  const int64_t T = max_tokens_per_step, D = c.dim, H = c.n_heads, d = c.head_dim;
  const int64_t K = c.n_activated_experts, E = c.n_routed_experts;
  const int64_t nI = std::max<int64_t>(1, c.index_n_heads);
  const int64_t dI = std::max<int64_t>(32, c.index_head_dim);
  const int64_t topk = std::max<int64_t>(1, c.index_topk);
  const int64_t grouped_width = c.o_groups * c.o_lora_rank;
  int64_t inter = 0, shared_inter = 0;
  for (const DeviceBlock& b : s.w.blocks) {
    inter = std::max({inter, b.ffn.shared.w13.rows / 2, b.ffn.w13.storage.rows / 2});
    shared_inter = std::max(shared_inter, b.ffn.shared.w13.rows / 2);
  }
  const int64_t max_cols = std::max({D, c.q_lora_rank, H * d, grouped_width, inter});
  const int64_t rows = T * std::max<int64_t>(1, K);

  s.dense = std::make_unique<DenseAttentionRows>(c, T, max_length, limits.dense_prefill_min_tokens,
                                                 hca_copies);
  const int64_t meta_blocks = kBatchMetaBlocks + s.dense->meta_blocks();
  s.meta = DeviceBuffer<int32_t>(size_t(meta_blocks * T));
  for (int i = 0; i < 2; ++i) {
    DSV4_CUDA_CHECK(cudaMallocHost(&s.host_meta[i], size_t(meta_blocks * T) * sizeof(int32_t)));
    DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&s.meta_uploaded[i], cudaEventDisableTiming));
  }
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

  s.qr = DeviceBuffer<uint16_t>(size_t(T * c.q_lora_rank));
  s.q = DeviceBuffer<uint16_t>(size_t(T * H * d));
  s.kv = DeviceBuffer<uint16_t>(size_t(T * d));
  s.chunk_rows = DeviceBuffer<uint8_t>(size_t(T * s.cache->kv_row_bytes()));
  int32_t attention_rows = 1;
  for (const LayerSpec& spec : c.layers) {
    attention_rows = std::max(attention_rows, attention_rows_bound(c, spec, max_length));
  }
  s.attn_split = DeviceBuffer<float>(
      sparse_attention_workspace_bytes(int32_t(T), int32_t(H), attention_rows) / sizeof(float));
  s.comp_kv = DeviceBuffer<float>(size_t(T * 2 * d));
  s.comp_gate = DeviceBuffer<float>(size_t(T * 2 * d));
  s.idx_q = DeviceBuffer<uint16_t>(size_t(T * nI * dI));
  s.idx_w = DeviceBuffer<uint16_t>(size_t(T * nI));
  s.idx_kv = DeviceBuffer<float>(size_t(T * 2 * dI));
  s.idx_gate = DeviceBuffer<float>(size_t(T * 2 * dI));
  s.scores = DeviceBuffer<uint16_t>(size_t(T * s.score_stride));
  s.indices = DeviceBuffer<int32_t>(size_t(T * topk));
  s.topk_workspace = DeviceBuffer<uint8_t>(std::max<size_t>(
      1, indexer_topk_workspace_bytes(int32_t(T), int32_t(max_visible), int32_t(topk))));
  DSV4_CUDA_CHECK(cudaMemset(s.topk_workspace.data(), 0, s.topk_workspace.size()));
  s.attn_out = DeviceBuffer<uint16_t>(size_t(T * H * d));
  s.attn_f32 = DeviceBuffer<float>(size_t(T * H * d));
  s.grouped = DeviceBuffer<uint16_t>(size_t(T * grouped_width));

  s.router_logits = DeviceBuffer<float>(size_t(T * E));
  s.route_weights = DeviceBuffer<float>(size_t(rows));
  s.experts = DeviceBuffer<int32_t>(size_t(rows));
  s.counts = DeviceBuffer<int32_t>(size_t(E));
  s.offsets = DeviceBuffer<int32_t>(size_t(E + 1));
  {
    const int64_t narrow = expert_narrow_tiles_capacity(E, rows);
    const int64_t wide = expert_wide_tiles_capacity(rows);
    s.expert_tile_lists = DeviceBuffer<int32_t>(size_t(narrow + wide + 2));
    s.expert_tiles = {s.expert_tile_lists.data(), s.expert_tile_lists.data() + narrow,
                      s.expert_tile_lists.data() + narrow + wide, narrow, wide};
  }
  s.order = DeviceBuffer<int32_t>(size_t(rows));
  s.position = DeviceBuffer<int32_t>(size_t(rows));
  s.x_codes = DeviceBuffer<uint8_t>(size_t(T * D));
  s.x_scales = DeviceBuffer<float>(size_t(T * ceil_div(D, 128)));
  s.gate_up = DeviceBuffer<uint16_t>(size_t(rows * 2 * inter));
  s.h = DeviceBuffer<uint16_t>(size_t(T * c.n_shared_experts * inter));
  s.expert_out = DeviceBuffer<uint16_t>(size_t(rows * D));
  s.shared_out = DeviceBuffer<uint16_t>(size_t(T * D));
  s.shared_gate_up = DeviceBuffer<uint16_t>(size_t(T * 2 * shared_inter));

  // The main lane's codes also carry the routed experts' grouped inputs (T · k rows); the side
  // lane's take T rows.
  const auto make_lane = [&](State::LinearScratch& lane, int64_t code_rows) {
    lane.codes = DeviceBuffer<uint8_t>(size_t(code_rows * max_cols));
    lane.scales = DeviceBuffer<float>(size_t(code_rows * ceil_div(max_cols, 128)));
    lane.wide = DeviceBuffer<float>(size_t(T * max_cols));
    lane.split_sums = DeviceBuffer<float>(size_t(scaled_gemm_split_floats()));
  };
  make_lane(s.main_lane, rows);
  make_lane(s.side_lane, T);
  s.logits = DeviceBuffer<float>(size_t(T * c.vocab_size));
}

CudaModel::~CudaModel() {
  if (!s_) return;
  for (auto& [tokens, graph] : s_->graphs) cudaGraphExecDestroy(graph);
  for (int i = 0; i < 2; ++i) {
    if (s_->host_meta[i]) cudaFreeHost(s_->host_meta[i]);
    if (s_->meta_uploaded[i]) cudaEventDestroy(s_->meta_uploaded[i]);
  }
  s_->side.destroy();
  s_->hc_weights.destroy();
  if (s_->stream) cudaStreamDestroy(s_->stream);
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

int64_t CudaModel::dense_attention_layers() const {
  return s_->dense->layers_in_last_step();
}

int32_t CudaModel::step(std::span<const Chunk> chunks) {
  State& s = *s_;
  const ModelConfig& c = config_;
  int64_t total = 0;
  bool decode_only = true;
  for (const Chunk& chunk : chunks) {
    total += int64_t(chunk.ids.size());
    decode_only &= chunk.ids.size() == 1;
  }
  if (total == 0) return 0;
  if (total > s.max_tokens) fail("CudaModel: {} tokens in a step, at most {}", total, s.max_tokens);

  const int64_t call = ++s.step_calls;
  const int buffer = int(s.steps % 2);
  int32_t* meta = s.host_meta[buffer];
  DSV4_CUDA_CHECK(cudaEventSynchronize(s.meta_uploaded[buffer]));
  const int64_t Tmax = s.max_tokens;
  int32_t t = 0;
  for (const Chunk& chunk : chunks) {
    const int32_t slot = chunk.slot;
    if (slot < 0 || size_t(slot) >= s.lengths.size() || s.lengths[size_t(slot)] < 0) {
      fail("CudaModel: slot {} is not admitted", slot);
    }
    if (s.fed_in_step[size_t(slot)] == call) {
      fail("CudaModel: slot {} appears twice in one step", slot);
    }
    s.fed_in_step[size_t(slot)] = call;
    const int64_t start = s.lengths[size_t(slot)];
    const auto count = int64_t(chunk.ids.size());
    if (start + count > std::min(s.max_length, c.max_seq_len)) {
      fail("CudaModel: sequence too long: {} tokens after this chunk, at most {}", start + count,
           std::min(s.max_length, c.max_seq_len));
    }
    const int32_t begin = t;
    for (int64_t i = 0; i < count; ++i, ++t) {
      const int32_t id = chunk.ids[size_t(i)];
      if (id < 0 || id >= c.vocab_size) fail("token id {} is outside the vocabulary", id);
      meta[t] = id;
      meta[Tmax + t] = slot;
      meta[2 * Tmax + t] = int32_t(start + i);
      meta[3 * Tmax + t] = begin;
      meta[4 * Tmax + t] = begin + int32_t(count);
    }
  }
  for (const Chunk& chunk : chunks) {
    if (!chunk.ids.empty()) {
      s.cache->reserve(chunk.slot, s.lengths[size_t(chunk.slot)] + int64_t(chunk.ids.size()),
                       s.stream);
    }
  }
  const int32_t T = t;
  const int64_t meta_blocks =
      kBatchMetaBlocks + s.dense->plan_step(meta, Tmax, kBatchMetaBlocks, T, decode_only);
  DSV4_CUDA_CHECK(cudaMemcpyAsync(s.meta.data(), meta, size_t(meta_blocks * Tmax) * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, s.stream));
  DSV4_CUDA_CHECK(cudaEventRecord(s.meta_uploaded[buffer], s.stream));
  ++s.steps;
  if (!decode_only) {
    run_layers(T);
  } else {
    auto found = s.graphs.find(T);
    if (found == s.graphs.end()) {
      cudaGraph_t graph = nullptr;
      DSV4_CUDA_CHECK(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal));
      try {
        run_layers(T);
      } catch (...) {
        cudaStreamEndCapture(s.stream, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      DSV4_CUDA_CHECK(cudaStreamEndCapture(s.stream, &graph));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      DSV4_CUDA_CHECK(status);
      found = s.graphs.emplace(T, exec).first;
    }
    DSV4_CUDA_CHECK(cudaGraphLaunch(found->second, s.stream));
  }
  for (const Chunk& chunk : chunks) s.lengths[size_t(chunk.slot)] += int64_t(chunk.ids.size());
  s.last_tokens = T;
  return T;
}

const float* CudaModel::logits() const {
  return s_->logits.data();
}

cudaStream_t CudaModel::stream() const {
  return s_->stream;
}

std::vector<float> CudaModel::forward(std::span<const Chunk> chunks) {
  const int32_t T = step(chunks);
  std::vector<float> logits(size_t(T * config_.vocab_size));
  if (T == 0) return logits;
  DSV4_CUDA_CHECK(cudaMemcpyAsync(logits.data(), s_->logits.data(), logits.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, s_->stream));
  DSV4_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  return logits;
}

// Every kernel of one step for T tokens whose metadata is on the device; launches only (the
// sequence of launches depends on T alone, so it can be captured as a graph).
void CudaModel::run_layers(int32_t T) {
  State& s = *s_;
  const ModelConfig& c = config_;
  s.batch.tokens = T;
  const int64_t D = c.dim;
  embed_into_streams(s.w.embed.data(), s.ids, T, D, c.hc_mult, s.streams.data(), s.stream);
  const auto eps = float(c.norm_eps);
  for (int64_t layer = 0; layer < c.n_layers; ++layer) {
    const DeviceBlock& b = s.w.blocks[size_t(layer)];
    collapse_streams(b.hc_attn, T);
    rms_norm(s.collapsed.data(), T, D, b.attn_norm.data(), eps, s.normed.data(), s.stream);
    attention(layer, T);
    expand_streams(T);

    collapse_streams(b.hc_ffn, T);
    rms_norm(s.collapsed.data(), T, D, b.ffn_norm.data(), eps, s.normed.data(), s.stream);
    moe(layer, T);
    expand_streams(T);
  }
  hc_head_collapse(s.streams.data(), T, s.hc, s.w.hc_head.params(), s.hc_workspace.data(),
                   s.collapsed.data(), s.stream);
  rms_norm(s.collapsed.data(), T, D, s.w.norm.data(), eps, s.normed.data(), s.stream);
  s.lin(s.normed.data(), T, s.w.head, nullptr, s.logits.data());
}

// An mHC site's collapse: the sublayer's input on the step's stream, post and comb beside it.
void CudaModel::collapse_streams(const DeviceHc& site, int32_t T) {
  State& s = *s_;
  hc_collapse_input(s.streams.data(), T, s.hc, site.params(), s.hc_workspace.data(),
                    s.collapsed.data(), s.stream);
  s.hc_weights.fork(s.stream);
  hc_collapse_weights(T, s.hc, site.params(), s.hc_workspace.data(), s.post.data(), s.comb.data(),
                      s.hc_weights.stream);
}

// The site's expand, once its post and comb are there.
void CudaModel::expand_streams(int32_t T) {
  State& s = *s_;
  s.hc_weights.join(s.stream);
  hc_expand(s.streams.data(), s.sublayer.data(), s.post.data(), s.comb.data(), T, s.hc, s.stream);
}

// src/cpu/attention.cpp step by step. Next steps: fuse the norms / RoPE into the GEMM
// epilogues and the KV row writer into the kv_norm kernel.
void CudaModel::attention(int64_t layer, int32_t T) {
  State& s = *s_;
  const ModelConfig& c = config_;
  const DeviceAttention& a = s.w.blocks[size_t(layer)].attn;
  const LayerSpec& spec = c.layers[size_t(layer)];
  const int64_t H = c.n_heads, d = c.head_dim, rd = c.rope_head_dim;
  const auto eps = float(c.norm_eps);
  const RopeTable& rope = spec.compress_ratio > 0 ? s.compress_rope : s.rope;
  cudaStream_t st = s.stream;

  const uint16_t* x = s.normed.data();
  // The queries (and the indexer's, which read qr) on the step's stream; alongside them on the
  // side lane, everything that writes the cache: the shared KV row, the compressors and the
  // indexer's head weights. Joined before the indexer's selection and the attention read both.
  s.fork_side();
  s.lin(x, T, a.wq_a, s.qr.data(), nullptr);
  rms_norm(s.qr.data(), T, c.q_lora_rank, a.q_norm.data(), eps, s.qr.data(), st);
  s.lin(s.qr.data(), T, a.wq_b, s.q.data(), nullptr);
  unweighted_head_norm(s.q.data(), T * H, d, eps, st);
  apply_rope(s.q.data(), T, H, d, H * d, rope, s.positions, false, st);
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  if (a.indexer) {
    s.lin(s.qr.data(), T, a.indexer->wq_b, s.idx_q.data(), nullptr);
    apply_rope(s.idx_q.data(), T, nI, dI, nI * dI, s.compress_rope, s.positions, false, st);
    indexer_query_rotate(s.idx_q.data(), T * nI, dI, st);
  }

  cudaStream_t side = s.side.stream;
  s.lin(x, T, a.wkv, s.kv.data(), nullptr, true);
  rms_norm(s.kv.data(), T, d, a.kv_norm.data(), eps, s.kv.data(), side);
  apply_rope(s.kv.data(), T, 1, d, d, rope, s.positions, false, side);
  KvWriteArgs kw;
  kw.batch = s.batch;
  kw.kv = s.kv.data();
  kw.head_dim = int32_t(d);
  kw.rope_dim = int32_t(rd);
  kw.chunk_rows = s.chunk_rows.data();
  kw.window = int32_t(c.window_size);
  write_kv_rows(kw, side);

  const auto L = int32_t(layer);
  const bool sparse = spec.attention == AttentionKind::kCompressedSparse;
  // The main KV compressor (entries) and the indexer's (index keys) differ only in these.
  const auto compress = [&](const DeviceCompressor& w, float* kv, float* gate, bool indexer) {
    s.lin(x, T, w.wkv, nullptr, kv, true);
    s.lin(x, T, w.wgate, nullptr, gate, true);
    CompressorArgs ca;
    ca.batch = s.batch;
    ca.kv = kv;
    ca.gate = gate;
    ca.ape = w.ape.data();
    ca.norm_weight = w.norm.data();
    ca.rope_inv_freq = s.compress_rope.inv_freq();
    ca.state = s.cache->compressor_state(L, indexer);
    ca.out = indexer ? s.cache->index_key_rows(L) : s.cache->entry_rows(L);
    if (!indexer) ca.dense_out = s.cache->dense_entry_rows(L);
    ca.kind = indexer ? CompressedKind::kIndexKey : CompressedKind::kMainKv;
    ca.ratio = int32_t(spec.compress_ratio);
    ca.dim = int32_t(indexer ? c.index_head_dim : d);
    ca.rope_dim = int32_t(rd);
    ca.overlap = indexer || sparse;
    ca.norm_eps = eps;
    compressor_step(ca, side);
  };
  if (a.compressor) compress(*a.compressor, s.comp_kv.data(), s.comp_gate.data(), false);
  if (a.indexer) {
    s.lin(x, T, a.indexer->weights_proj, s.idx_w.data(), nullptr, true);
    scale_bf16(s.idx_w.data(), T * nI, float(1.0 / std::sqrt(double(dI)) / std::sqrt(double(nI))),
               side);
    compress(a.indexer->compressor, s.idx_kv.data(), s.idx_gate.data(), true);
  }
  s.join_side();

  IndexerArgs ia;
  if (a.indexer) {
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
    ia.topk_workspace = s.topk_workspace.data();
    ia.topk_workspace_bytes = s.topk_workspace.size();
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
  sa.workspace = s.attn_split.data();
  sa.workspace_bytes = s.attn_split.size() * sizeof(float);
  sa.max_rows = attention_rows_bound(c, spec, s.max_length);
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
  s.dense->apply(sa, L, int32_t(spec.compress_ratio), *s.cache, s.meta.data(), s.max_tokens,
                 kBatchMetaBlocks);
  sparse_attention(sa, st);
  commit_window_rows(s.batch, s.chunk_rows.data(), s.cache->window_rows(L), int32_t(c.window_size),
                     st);

  apply_rope(s.attn_out.data(), T, H, d, H * d, rope, s.positions, true, st);
  if (bf16_gemm_available(a.wo_a.view(), c.o_groups)) {
    bf16_gemm(s.attn_out.data(), T, c.o_groups, a.wo_a.view(), {nullptr, s.grouped.data()}, st,
              s.main_lane.split());
  } else {
    bf16_to_f32(s.attn_out.data(), T * H * d, s.attn_f32.data(), st);
    grouped_gemm(s.attn_f32.data(), T, c.o_groups, a.wo_a.view(), {nullptr, s.grouped.data()}, st);
  }
  s.lin(s.grouped.data(), T, a.wo_b, s.sublayer.data(), nullptr);
}

}  // namespace dsv4::cuda
