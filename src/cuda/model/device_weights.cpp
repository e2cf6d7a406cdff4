#include "cuda/model/device_weights.h"

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "core/error.h"
#include "core/formats.h"
#include "cuda/kernels/gemm/expert_weight_order.h"
#include "cuda/runtime/check.h"
#include "model/tensor_schema.h"

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
  return {stack_linears(upload_linear(w.w1), upload_linear(w.w3)), upload_linear(w.w2)};
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

// w1 over w3: one GEMM produces the gate and up halves that swiglu reads side by side. Stacked
// after encoding, so that NVFP4 rows keep their own tensor's global scale.
EncodedLinear stack_w1_w3(const LinearWeight& w1, const LinearWeight& w3) {
  if (w1.cols != w3.cols || w1.format != w3.format || w1.rows != w3.rows) {
    fail("upload_weights: cannot stack a [{}, {}] {} expert w3 under a [{}, {}] {} w1", w3.rows,
         w3.cols, weight_format_name(w3.format), w1.rows, w1.cols, weight_format_name(w1.format));
  }
  return stack_encoded(encode_linear(w1), w1.rows, encode_linear(w3), w1.cols, w1.format);
}

// A token reaches an expert at most once, which the expert GEMM's grid relies on.
void check_hash_table(const MoeWeights& w, int64_t k) {
  for (size_t row = 0; row * size_t(k) < w.tid2eid.size(); ++row) {
    const auto first = w.tid2eid.begin() + std::ptrdiff_t(row * size_t(k));
    std::vector<int32_t> ids(first, first + std::ptrdiff_t(k));
    std::sort(ids.begin(), ids.end());
    if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
      fail("upload_weights: tid2eid row {} names an expert twice", row);
    }
  }
}

DeviceMoe upload_moe(const MoeWeights& w, int64_t k) {
  DeviceMoe m;
  m.gate = upload_linear(w.gate);
  m.gate_bias = upload_f32(w.gate_bias);
  check_hash_table(w, k);
  m.tid2eid = upload_vector(w.tid2eid);
  std::vector<EncodedLinear> w13;
  std::vector<const LinearWeight*> w2_ptrs;
  w13.reserve(w.experts.size());
  for (const ExpertWeights& e : w.experts) {
    w13.push_back(stack_w1_w3(e.w1, e.w3));
    w2_ptrs.push_back(&e.w2);
  }
  if (w.experts.empty()) fail("upload_weights: a MoE layer without routed experts");
  const LinearWeight& w1 = w.experts.front().w1;
  m.w13 = upload_packed(w13, 2 * w1.rows, w1.cols, w1.format);
  m.w2 = upload_packed(w2_ptrs);
  order_experts_for_tensor_cores(m.w13);
  order_experts_for_tensor_cores(m.w2);
  m.shared = upload_expert(w.shared);
  return m;
}

}  // namespace

size_t DeviceWeights::bytes() const {
  size_t total = head.bytes() + embed.size() * sizeof(uint16_t);
  for (const DeviceBlock& b : blocks) {
    const DeviceAttention& a = b.attn;
    total += a.wq_a.bytes() + a.wq_b.bytes() + a.wkv.bytes() + a.wo_a.bytes() + a.wo_b.bytes();
    if (a.compressor) total += a.compressor->wkv.bytes() + a.compressor->wgate.bytes();
    if (a.indexer) {
      total += a.indexer->wq_b.bytes() + a.indexer->weights_proj.bytes() +
               a.indexer->compressor.wkv.bytes() + a.indexer->compressor.wgate.bytes();
    }
    total += b.ffn.gate.bytes();
    total += b.ffn.w13.bytes() + b.ffn.w2.bytes();
    total += b.ffn.shared.w13.bytes() + b.ffn.shared.w2.bytes();
  }
  return total;
}

size_t device_bytes(const ModelConfig& config, const ModelWeights& weights) {
  size_t total = 0;
  visit_tensors(
      config, weights,
      [&](const std::string&, TensorRole, const std::vector<int64_t>&, const auto& field) {
        using Field = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_same_v<Field, LinearWeight>) {
          const auto elements = size_t(field.rows * field.cols);
          switch (field.format) {
            case WeightFormat::kF32:
              total += 4 * elements;
              break;
            case WeightFormat::kBF16:
              total += 2 * elements;
              break;
            case WeightFormat::kFp8:
              total += elements + 4 * field.scales.size();
              break;
            case WeightFormat::kFp4:
              total += elements / 2 + field.scales.size();
              break;
            case WeightFormat::kNvFp4:
              total += elements / 2 + field.scales.size() + sizeof(float) * size_t(field.rows);
              break;
          }
        } else {
          total += field.size() * sizeof(typename Field::value_type);
        }
      });
  return total;
}

DeviceWeights upload_weights(const ModelConfig& config, const ModelWeights& weights) {
  const size_t need = device_bytes(config, weights);
  size_t free_bytes = 0, total_bytes = 0;
  DSV4_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (need > free_bytes) {
    fail(
        "the model does not fit: its weights need {:.2f} GiB of GPU memory, the GPU has {:.2f} "
        "GiB free of {:.2f} GiB",
        double(need) / kGiB, double(free_bytes) / kGiB, double(total_bytes) / kGiB);
  }
  // Progress for loads that take a while (more than ~1 GiB).
  const bool progress = need > (size_t(1) << 30);
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
    if (progress) {
      std::fprintf(stderr, "\ruploading weights to the GPU: layer %zu of %zu", d.blocks.size() + 1,
                   weights.blocks.size());
    }
    d.blocks.push_back({upload_f32(b.attn_norm), upload_f32(b.ffn_norm), upload_hc(b.hc_attn),
                        upload_hc(b.hc_ffn), upload_attention(b.attn),
                        upload_moe(b.ffn, config.n_activated_experts)});
  }
  d.norm = upload_f32(weights.norm);
  d.head = upload_linear(weights.head);
  d.hc_head = upload_hc(weights.hc_head);
  if (progress) std::fprintf(stderr, " (%.2f GiB)\n", double(d.bytes()) / kGiB);
  return d;
}

}  // namespace dsv4::cuda
