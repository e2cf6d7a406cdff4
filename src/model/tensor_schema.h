// The tensors a config implies, in one place: their official names (MODEL.md §4), their role
// (which decides the dtypes a checkpoint may store them in) and their logical shapes, each tied
// to the ModelWeights field it fills. The loader, the checkpoint writer, the synthetic model
// and `inspect` all walk this one list.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace dsv4 {

enum class TensorRole {
  kQuantizedLinear,  // FP8 e4m3 + 128x128 block scales officially; BF16 / F32 accepted
  kExpertLinear,     // routed expert: FP4 e2m1 + 1x32 block scales officially; FP8, BF16, F32
  kOutputLora,       // wo_a: BF16 officially; F32 and FP8 accepted
  kPlainLinear,      // BF16 matrix (F32 accepted): embed, head, gate, compressor, weights_proj
  kNormWeight,       // RMSNorm weight: BF16 (F32 accepted)
  kFp32Param,        // F32 (BF16 accepted): hc_*, attn_sink, ape, gate.bias
  kExpertTable,      // tid2eid: I64 or I32
};
const char* tensor_role_name(TensorRole role);
inline bool is_linear_role(TensorRole role) {
  return role == TensorRole::kQuantizedLinear || role == TensorRole::kExpertLinear ||
         role == TensorRole::kOutputLora || role == TensorRole::kPlainLinear;
}

// ModelWeights with every block, expert, compressor and indexer the config implies, and
// `mtp_layers` MTP blocks, but no values yet.
ModelWeights empty_weights(const ModelConfig& config, int64_t mtp_layers);

// Total number of weight values of `weights` (every tensor's logical element count, MTP
// blocks included); an empty_weights() structure gives the count without any values.
int64_t parameter_count(const ModelConfig& config, const ModelWeights& weights);

// The attention and routing of an MTP block: sliding window, routed by score.
inline constexpr LayerSpec kMtpLayerSpec{};

namespace schema_detail {

template <typename Compressor, typename Visit>
void visit_compressor(const std::string& prefix, int64_t ratio, bool overlap, int64_t head_dim,
                      const ModelConfig& c, Compressor& compressor, Visit& visit) {
  const int64_t width = (overlap ? 2 : 1) * head_dim;
  visit(prefix + "wkv.weight", TensorRole::kPlainLinear, {width, c.dim}, compressor.wkv);
  visit(prefix + "wgate.weight", TensorRole::kPlainLinear, {width, c.dim}, compressor.wgate);
  visit(prefix + "ape", TensorRole::kFp32Param, {ratio, width}, compressor.ape);
  visit(prefix + "norm.weight", TensorRole::kNormWeight, {head_dim}, compressor.norm);
}

template <typename Hc, typename Visit>
void visit_hyper_connection(const std::string& prefix, int64_t mix, int64_t scales,
                            const ModelConfig& c, Hc& hc, Visit& visit) {
  visit(prefix + "_fn", TensorRole::kFp32Param, {mix, c.hc_mult * c.dim}, hc.fn);
  visit(prefix + "_base", TensorRole::kFp32Param, {mix}, hc.base);
  visit(prefix + "_scale", TensorRole::kFp32Param, {scales}, hc.scale);
}

template <typename Expert, typename Visit>
void visit_expert(const std::string& prefix, TensorRole role, const ModelConfig& c, Expert& expert,
                  Visit& visit) {
  visit(prefix + "w1.weight", role, {c.moe_inter_dim, c.dim}, expert.w1);
  visit(prefix + "w2.weight", role, {c.dim, c.moe_inter_dim}, expert.w2);
  visit(prefix + "w3.weight", role, {c.moe_inter_dim, c.dim}, expert.w3);
}

template <typename Block, typename Visit>
void visit_block(const std::string& p, const LayerSpec& spec, const ModelConfig& c, Block& block,
                 Visit& visit) {
  visit(p + "attn_norm.weight", TensorRole::kNormWeight, {c.dim}, block.attn_norm);
  visit(p + "ffn_norm.weight", TensorRole::kNormWeight, {c.dim}, block.ffn_norm);
  visit_hyper_connection(p + "hc_attn", c.mix_hc(), 3, c, block.hc_attn, visit);
  visit_hyper_connection(p + "hc_ffn", c.mix_hc(), 3, c, block.hc_ffn, visit);

  auto& attn = block.attn;
  const std::string a = p + "attn.";
  const int64_t heads_width = c.n_heads * c.head_dim;
  visit(a + "wq_a.weight", TensorRole::kQuantizedLinear, {c.q_lora_rank, c.dim}, attn.wq_a);
  visit(a + "q_norm.weight", TensorRole::kNormWeight, {c.q_lora_rank}, attn.q_norm);
  visit(a + "wq_b.weight", TensorRole::kQuantizedLinear, {heads_width, c.q_lora_rank}, attn.wq_b);
  visit(a + "wkv.weight", TensorRole::kQuantizedLinear, {c.head_dim, c.dim}, attn.wkv);
  visit(a + "kv_norm.weight", TensorRole::kNormWeight, {c.head_dim}, attn.kv_norm);
  visit(a + "wo_a.weight", TensorRole::kOutputLora,
        {c.o_groups * c.o_lora_rank, heads_width / c.o_groups}, attn.wo_a);
  visit(a + "wo_b.weight", TensorRole::kQuantizedLinear, {c.dim, c.o_groups * c.o_lora_rank},
        attn.wo_b);
  visit(a + "attn_sink", TensorRole::kFp32Param, {c.n_heads}, attn.attn_sink);
  const bool csa = spec.attention == AttentionKind::kCompressedSparse;
  if (spec.attention != AttentionKind::kSlidingWindow) {
    visit_compressor(a + "compressor.", spec.compress_ratio, csa, c.head_dim, c,
                     attn.compressor.value(), visit);
  }
  if (csa) {
    auto& indexer = attn.indexer.value();
    visit(a + "indexer.wq_b.weight", TensorRole::kQuantizedLinear,
          {c.index_n_heads * c.index_head_dim, c.q_lora_rank}, indexer.wq_b);
    visit(a + "indexer.weights_proj.weight", TensorRole::kPlainLinear, {c.index_n_heads, c.dim},
          indexer.weights_proj);
    visit_compressor(a + "indexer.compressor.", spec.compress_ratio, true, c.index_head_dim, c,
                     indexer.compressor, visit);
  }

  auto& ffn = block.ffn;
  const std::string f = p + "ffn.";
  visit(f + "gate.weight", TensorRole::kPlainLinear, {c.n_routed_experts, c.dim}, ffn.gate);
  if (spec.hash_routing) {
    visit(f + "gate.tid2eid", TensorRole::kExpertTable, {c.vocab_size, c.n_activated_experts},
          ffn.tid2eid);
  } else {
    visit(f + "gate.bias", TensorRole::kFp32Param, {c.n_routed_experts}, ffn.gate_bias);
  }
  for (size_t e = 0; e < ffn.experts.size(); ++e) {
    visit_expert(fmt::format("{}experts.{}.", f, e), TensorRole::kExpertLinear, c, ffn.experts[e],
                 visit);
  }
  visit_expert(f + "shared_experts.", TensorRole::kQuantizedLinear, c, ffn.shared, visit);
}

}  // namespace schema_detail

// Calls visit(name, role, shape, field) for every tensor of `weights` (a ModelWeights shaped
// like empty_weights(config, ...), const or not). `name` is the official checkpoint name
// (".weight" names of linears; their ".scale" partners are implied by the stored dtype),
// `shape` the logical shape ([rows, cols] for linears) and `field` the LinearWeight,
// std::vector<float> or std::vector<int32_t> it fills.
template <typename Weights, typename Visit>
void visit_tensors(const ModelConfig& c, Weights& weights, Visit&& visit) {
  using schema_detail::visit_block;
  visit("embed.weight", TensorRole::kPlainLinear, {c.vocab_size, c.dim}, weights.embed);
  for (size_t i = 0; i < weights.blocks.size(); ++i) {
    visit_block(fmt::format("layers.{}.", i), c.layers[i], c, weights.blocks[i], visit);
  }
  visit("norm.weight", TensorRole::kNormWeight, {c.dim}, weights.norm);
  visit("head.weight", TensorRole::kPlainLinear, {c.vocab_size, c.dim}, weights.head);
  schema_detail::visit_hyper_connection("hc_head", c.hc_mult, 1, c, weights.hc_head, visit);
  for (size_t i = 0; i < weights.mtp.size(); ++i) {
    auto& mtp = weights.mtp[i];
    const std::string p = fmt::format("mtp.{}.", i);
    visit_block(p, kMtpLayerSpec, c, mtp.block, visit);
    visit(p + "e_proj.weight", TensorRole::kQuantizedLinear, {c.dim, c.dim}, mtp.e_proj);
    visit(p + "h_proj.weight", TensorRole::kQuantizedLinear, {c.dim, c.dim}, mtp.h_proj);
    visit(p + "enorm.weight", TensorRole::kNormWeight, {c.dim}, mtp.enorm);
    visit(p + "hnorm.weight", TensorRole::kNormWeight, {c.dim}, mtp.hnorm);
    visit(p + "norm.weight", TensorRole::kNormWeight, {c.dim}, mtp.norm);
    schema_detail::visit_hyper_connection(p + "hc_head", c.hc_mult, 1, c, mtp.hc_head, visit);
  }
}

}  // namespace dsv4
