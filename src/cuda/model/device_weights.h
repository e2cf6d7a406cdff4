// A host ModelWeights (src/model/weights.h) on the device, in the forms the kernels read:
// every linear through upload_linear (checkpoint formats, no dequantized copies; a layer's
// routed experts packed into one allocation per matrix for the one-launch expert GEMM), norms, mHC
// parameters, sinks, position biases and gate biases as fp32, the embedding as bf16 and
// tid2eid as int32. Uploaded once at load time (synchronous). MTP weights are not uploaded.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "cuda/runtime/device_buffer.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv4::cuda {

struct DeviceHc {
  DeviceBuffer<float> fn, base, scale;
  HcParams params() const { return {fn.data(), base.data(), scale.data()}; }
};

struct DeviceCompressor {
  DeviceLinear wkv, wgate;
  DeviceBuffer<float> ape, norm;
};

struct DeviceIndexer {
  DeviceLinear wq_b, weights_proj;
  DeviceCompressor compressor;
};

struct DeviceAttention {
  DeviceLinear wq_a, wq_b, wkv, wo_a, wo_b;
  DeviceBuffer<float> q_norm, kv_norm, attn_sink;
  std::optional<DeviceCompressor> compressor;
  std::optional<DeviceIndexer> indexer;
};

struct DeviceExpert {
  DeviceLinear w13;  // w1 rows over w3 rows: [2·inter, dim], one GEMM for the gate and up halves
  DeviceLinear w2;
};

struct DeviceMoe {
  DeviceLinear gate;
  DeviceBuffer<float> gate_bias;  // empty for hash-routed layers
  DeviceBuffer<int32_t> tid2eid;  // empty for score-routed layers
  DevicePackedLinears w13;        // per routed expert: w1 rows, then w3 rows [2·inter, dim]
  DevicePackedLinears w2;         // per routed expert: [dim, inter]
  DeviceExpert shared;
};

struct DeviceBlock {
  DeviceBuffer<float> attn_norm, ffn_norm;
  DeviceHc hc_attn, hc_ffn;
  DeviceAttention attn;
  DeviceMoe ffn;
};

struct DeviceWeights {
  DeviceBuffer<uint16_t> embed;  // bf16 [vocab, dim]
  std::vector<DeviceBlock> blocks;
  DeviceBuffer<float> norm;
  DeviceLinear head;
  DeviceHc hc_head;

  size_t bytes() const;  // linear weights and the embedding
};

// Bytes of GPU memory the weights take in their device formats.
size_t device_bytes(const ModelConfig& config, const ModelWeights& weights);

// Uploads every weight (progress on stderr for large models); fails first, saying how much is
// needed and free, when they do not fit in the GPU's free memory.
DeviceWeights upload_weights(const ModelConfig& config, const ModelWeights& weights);

}  // namespace dsv4::cuda
