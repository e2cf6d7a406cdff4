// CudaModel's device state (internal to src/cuda/model): weights, cache, step metadata and
// every scratch buffer, allocated once at construction so that a step never allocates.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/dense_attention_rows.h"
#include "cuda/model/device_weights.h"
#include "cuda/runtime/device_buffer.h"

namespace dsv4::cuda {

struct CudaModel::State {
  // A stream beside the step's: its work forks from `from` and joins back into `into` within
  // the step, so that the step's graph holds it as a parallel branch.
  struct Branch {
    cudaStream_t stream = nullptr;
    cudaEvent_t forked = nullptr, joined = nullptr;
    void create();
    void destroy();
    void fork(cudaStream_t from);  // stream waits for everything `from` has been given so far
    void join(cudaStream_t into);  // `into` waits for everything stream has been given so far
  };

  cudaStream_t stream = nullptr;
  // Chains of a layer that do not depend on each other run side by side: the side lane's work
  // (the attention's KV row, compressors and indexer weights; the MoE's FP8 shared expert) goes
  // to side.stream with scratch of its own, forked from `stream` (fork_side) and joined back
  // (join_side) within the layer; an mHC site's post and comb (hc_collapse_weights, the
  // Sinkhorn's long dependent chain) go to hc_weights, from the site's collapse to its expand.
  // A step's graph holds three parallel branches a layer.
  Branch side, hc_weights;
  DeviceWeights w;
  std::unique_ptr<KvCache> cache;
  RopeTable rope, compress_rope;
  HcShape hc;
  int64_t max_tokens = 0, max_length = 0;
  std::vector<int64_t> lengths;      // per slot; -1: free
  std::vector<int64_t> fed_in_step;  // per slot: the last step call naming it (duplicate check)
  int64_t step_calls = 0;
  int64_t score_stride = 0;

  // Step metadata: ids, slot, position, chunk_begin, chunk_end ([5][max_tokens]), uploaded
  // before each step from one of two pinned host buffers; a buffer is rewritten only after
  // its previous upload (two steps back) has completed, so the host never waits for a step.
  DeviceBuffer<int32_t> meta;
  int32_t* host_meta[2] = {nullptr, nullptr};
  cudaEvent_t meta_uploaded[2] = {nullptr, nullptr};
  int64_t steps = 0;
  TokenBatchView batch;
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;

  // Residual streams and the mHC site.
  DeviceBuffer<uint16_t> streams, collapsed, normed, sublayer;
  DeviceBuffer<float> hc_workspace, post, comb;
  DeviceBuffer<float> attn_split;             // split-KV partials of the sparse attention
  std::unique_ptr<DenseAttentionRows> dense;  // dense (bf16) attention rows
  // Attention.
  DeviceBuffer<uint16_t> qr, q, kv, idx_q, idx_w, scores, attn_out, grouped;
  DeviceBuffer<float> comp_kv, comp_gate, idx_kv, idx_gate, attn_f32;
  DeviceBuffer<uint8_t> chunk_rows;
  DeviceBuffer<int32_t> indices;
  DeviceBuffer<uint8_t> topk_workspace;  // the indexer top-k split over CTAs (few tokens)
  // MoE.
  DeviceBuffer<float> router_logits, route_weights;
  DeviceBuffer<int32_t> experts, counts, offsets, order, position;
  DeviceBuffer<int32_t> expert_tile_lists;  // moe_group lists them: narrow, wide, counts
  ExpertTiles expert_tiles;
  DeviceBuffer<uint8_t> x_codes;  // the MoE input quantized once for every expert
  DeviceBuffer<float> x_scales;
  DeviceBuffer<uint16_t> gate_up, expert_out, shared_out;
  DeviceBuffer<uint16_t> h;  // the shared expert's SwiGLU output where its weights are not FP8
  DeviceBuffer<uint16_t> shared_gate_up;  // the FP8 shared expert's [g | u] (side lane)
  // A lane's GEMM inputs: FP8 codes and scales for FP8/FP4 weights, fp32 widenings for plain
  // ones, and the partial sums of linears split over their inputs.
  struct LinearScratch {
    DeviceBuffer<uint8_t> codes;
    DeviceBuffer<float> scales, wide, split_sums;
    SplitSums split() { return {split_sums.data(), int64_t(split_sums.size())}; }
  };
  LinearScratch main_lane, side_lane;
  DeviceBuffer<float> logits;
  int32_t last_tokens = 0;

  // Decode graphs by token count, captured the first time a step of only decode tokens (one
  // per sequence) has that count.
  std::map<int32_t, cudaGraphExec_t> graphs;

  State(const ModelConfig& c, DeviceWeights weights)
      : w(std::move(weights)),
        rope(rope_inv_freq_for_layer(c, false)),
        compress_rope(rope_inv_freq_for_layer(c, true)),
        hc(hc_shape(c)) {}

  // y = x · Wᵀ for bf16 activations x [m, weight.cols]: FP8/FP4 weights quantize x straight
  // from bf16 (the same codes as from its fp32 widening); bf16 weights take x as it is on
  // sm_90; other plain weights widen x first. On `stream` with the main lane's scratch, or
  // (on_side) on side.stream with the side lane's.
  void lin(const uint16_t* x, int64_t m, const DeviceLinear& weight, uint16_t* bf16, float* f32,
           bool on_side = false);
  // side.fork(stream) and side.join(stream).
  void fork_side();
  void join_side();
};

}  // namespace dsv4::cuda
