#include "cuda/model/device_weights.h"

#include "core/error.h"
#include "core/formats.h"

namespace dsv4::cuda {
namespace {

template <typename T>
DeviceBuffer<T> upload_vector(const std::vector<T>& v) {
  return v.empty() ? DeviceBuffer<T>() : DeviceBuffer<T>(v);
}

DeviceBuffer<float> upload_f32(const std::vector<float>& v) {
  return upload_vector(v);
}

DeviceHc upload_hc(const HyperConnectionWeights& w) {
  return {upload_f32(w.fn), upload_f32(w.base), upload_f32(w.scale)};
}

DeviceCompressor upload_compressor(const CompressorWeights& w) {
  return {upload_linear(w.wkv), upload_linear(w.wgate), upload_f32(w.ape), upload_f32(w.norm)};
}

DeviceExpert upload_expert(const ExpertWeights& w) {
  return {upload_linear(w.w1), upload_linear(w.w2), upload_linear(w.w3)};
}

DeviceAttention upload_attention(const AttentionWeights& w) {
  DeviceAttention a{upload_linear(w.wq_a), upload_linear(w.wq_b),   upload_linear(w.wkv),
                    upload_linear(w.wo_a), upload_linear(w.wo_b),   upload_f32(w.q_norm),
                    upload_f32(w.kv_norm), upload_f32(w.attn_sink), std::nullopt,
                    std::nullopt};
  if (w.compressor) a.compressor = upload_compressor(*w.compressor);
  if (w.indexer) {
    a.indexer =
        DeviceIndexer{upload_linear(w.indexer->wq_b), upload_linear(w.indexer->weights_proj),
                      upload_compressor(w.indexer->compressor)};
  }
  return a;
}

DeviceMoe upload_moe(const MoeWeights& w) {
  DeviceMoe m;
  m.gate = upload_linear(w.gate);
  m.gate_bias = upload_f32(w.gate_bias);
  m.tid2eid = upload_vector(w.tid2eid);
  for (const ExpertWeights& e : w.experts) m.experts.push_back(upload_expert(e));
  m.shared = upload_expert(w.shared);
  return m;
}

}  // namespace

size_t DeviceWeights::bytes() const {
  size_t total = head.bytes();
  for (const DeviceBlock& b : blocks) {
    const DeviceAttention& a = b.attn;
    total += a.wq_a.bytes() + a.wq_b.bytes() + a.wkv.bytes() + a.wo_a.bytes() + a.wo_b.bytes();
    if (a.compressor) total += a.compressor->wkv.bytes() + a.compressor->wgate.bytes();
    if (a.indexer) {
      total += a.indexer->wq_b.bytes() + a.indexer->weights_proj.bytes() +
               a.indexer->compressor.wkv.bytes() + a.indexer->compressor.wgate.bytes();
    }
    total += b.ffn.gate.bytes();
    for (const DeviceExpert& e : b.ffn.experts) total += e.w1.bytes() + e.w2.bytes() + e.w3.bytes();
    total += b.ffn.shared.w1.bytes() + b.ffn.shared.w2.bytes() + b.ffn.shared.w3.bytes();
  }
  return total;
}

DeviceWeights upload_weights(const ModelConfig& config, const ModelWeights& weights) {
  DeviceWeights d;
  const LinearWeight& embed = weights.embed;
  if (embed.rows != config.vocab_size || embed.cols != config.dim) {
    fail("upload_weights: embedding is [{}, {}], expected [{}, {}]", embed.rows, embed.cols,
         config.vocab_size, config.dim);
  }
  std::vector<uint16_t> table(size_t(embed.rows * embed.cols));
  for (int64_t r = 0; r < embed.rows; ++r) {
    for (int64_t c = 0; c < embed.cols; ++c) {
      const float v = embed.dequantized(r, c);
      if (round_bf16(v) != v) fail("upload_weights: embedding value {} is not a bf16 value", v);
      table[size_t(r * embed.cols + c)] = float_to_bf16(v);
    }
  }
  d.embed = DeviceBuffer<uint16_t>(table);
  for (const BlockWeights& b : weights.blocks) {
    d.blocks.push_back({upload_f32(b.attn_norm), upload_f32(b.ffn_norm), upload_hc(b.hc_attn),
                        upload_hc(b.hc_ffn), upload_attention(b.attn), upload_moe(b.ffn)});
  }
  d.norm = upload_f32(weights.norm);
  d.head = upload_linear(weights.head);
  d.hc_head = upload_hc(weights.hc_head);
  return d;
}

}  // namespace dsv4::cuda
