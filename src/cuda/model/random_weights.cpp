#include "cuda/model/random_weights.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "cuda/kernels/gemm/expert_weight_order.h"
#include "cuda/model/random_fill.h"
#include "cuda/runtime/check.h"
#include "model/synthetic_random.h"
#include "model/tensor_schema.h"

namespace dsv4::cuda {
namespace {

// Left free for the CUDA context's own allocations and allocation rounding.
constexpr size_t kHeadroomBytes = size_t(256) << 20;

struct TensorInfo {
  std::string name;
  TensorRole role;
  std::vector<int64_t> shape;

  int64_t elements() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  }
};

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Device bytes of one tensor in the format its role implies (see Generator::linear).
size_t tensor_bytes(TensorRole role, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  switch (role) {
    case TensorRole::kQuantizedLinear:
      return size_t(n + ceil_div(shape[0], 128) * ceil_div(shape[1], 128) * 4);
    case TensorRole::kExpertLinear:
      return size_t(n / 2 + n / 32);
    case TensorRole::kOutputLora:
    case TensorRole::kPlainLinear:
      return size_t(n * 2);
    case TensorRole::kNormWeight:
    case TensorRole::kFp32Param:
    case TensorRole::kExpertTable:
      return size_t(n * 4);
  }
  return 0;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

double gib(size_t bytes) {
  return double(bytes) / double(size_t(1) << 30);
}

// Walks the host skeleton in upload_weights' order; each field's name, role and shape come from
// visit_tensors, looked up by the field's address.
class Generator {
 public:
  Generator(const ModelConfig& config, uint64_t seed)
      : config_(config), seed_(seed), skeleton_(empty_weights(config, 0)) {
    visit_tensors(
        config_, skeleton_,
        [&](const std::string& name, TensorRole role, const std::vector<int64_t>& shape,
            const auto& field) {
          schema_.emplace(static_cast<const void*>(&field), TensorInfo{name, role, shape});
        });
  }

  const ModelWeights& skeleton() const { return skeleton_; }
  size_t allocated() const { return allocated_; }

  DeviceBuffer<uint16_t> embedding() {
    const TensorInfo& t = info(&skeleton_.embed);
    DeviceBuffer<uint16_t> out(size_t(t.elements()));
    allocated_ += out.size() * sizeof(uint16_t);
    fill_random_bf16(out.data(), t.elements(), 0.0f, 1.0f, seed_for(t.name), nullptr);
    return out;
  }

  // FP8 for quantized linears, FP4 for expert linears, bf16 otherwise; N(0, 1/cols) values.
  DeviceLinear linear(const LinearWeight& field) {
    const TensorInfo& t = info(&field);
    DeviceLinear d;
    d.rows = t.shape[0];
    d.cols = t.shape[1];
    const float stddev = 1.0f / std::sqrt(float(d.cols));
    const uint64_t seed = seed_for(t.name);
    if (t.role == TensorRole::kQuantizedLinear) {
      d.format = WeightFormat::kFp8;
      d.scale_storage = ScaleStorage::kF32;
      d.values = DeviceBuffer<uint8_t>(size_t(d.rows * d.cols));
      d.scales = DeviceBuffer<uint8_t>(size_t(ceil_div(d.rows, 128) * ceil_div(d.cols, 128) * 4));
      fill_random_fp8(d.values.data(), reinterpret_cast<float*>(d.scales.data()), d.rows, d.cols,
                      stddev, seed, nullptr);
    } else if (t.role == TensorRole::kExpertLinear) {
      d.format = WeightFormat::kFp4;
      d.scale_storage = ScaleStorage::kUe8m0;
      d.values = DeviceBuffer<uint8_t>(size_t(d.rows * d.cols / 2));
      d.scales = DeviceBuffer<uint8_t>(size_t(d.rows * d.cols / 32));
      fill_random_fp4(d.values.data(), d.scales.data(), d.rows, d.cols, stddev, seed, nullptr);
    } else {
      d.format = WeightFormat::kBF16;
      d.values = DeviceBuffer<uint8_t>(size_t(d.rows * d.cols * 2));
      fill_random_bf16(reinterpret_cast<uint16_t*>(d.values.data()), d.rows * d.cols, 0.0f, stddev,
                       seed, nullptr);
    }
    allocated_ += d.bytes();
    return d;
  }

  // Norm weights ~1 (bf16 values); other parameters scaled as synthetic_weights scales them.
  DeviceBuffer<float> f32(const std::vector<float>& field) {
    const TensorInfo& t = info(&field);
    const int64_t row = t.shape.back();
    float mean = 0.0f, stddev = 1.0f;
    if (t.role == TensorRole::kNormWeight) {
      mean = 1.0f;
      stddev = 0.1f;
    } else if (ends_with(t.name, "_fn")) {
      stddev = 0.5f / std::sqrt(float(row));
    } else if (ends_with(t.name, "_base") || ends_with(t.name, "ape")) {
      stddev = 0.5f;
    } else if (ends_with(t.name, "_scale")) {
      mean = 1.0f;
      stddev = 0.25f;
    } else if (ends_with(t.name, "gate.bias")) {
      stddev = 0.1f;
    }
    DeviceBuffer<float> out(size_t(t.elements()));
    allocated_ += out.size() * sizeof(float);
    fill_random_f32(out.data(), t.elements(), mean, stddev, t.role == TensorRole::kNormWeight,
                    seed_for(t.name), nullptr);
    return out;
  }

  DeviceBuffer<int32_t> expert_table(const std::vector<int32_t>& field) {
    const TensorInfo& t = info(&field);
    DeviceBuffer<int32_t> out(size_t(t.elements()));
    allocated_ += out.size() * sizeof(int32_t);
    fill_random_expert_table(out.data(), t.shape[0], int32_t(t.shape[1]),
                             int32_t(config_.n_routed_experts), seed_for(t.name), nullptr);
    return out;
  }

  DeviceHc hc(const HyperConnectionWeights& w) {
    DeviceHc d;
    d.fn = f32(w.fn);
    d.base = f32(w.base);
    d.scale = f32(w.scale);
    return d;
  }

  DeviceCompressor compressor(const CompressorWeights& w) {
    DeviceCompressor d;
    d.wkv = linear(w.wkv);
    d.wgate = linear(w.wgate);
    d.ape = f32(w.ape);
    d.norm = f32(w.norm);
    return d;
  }

  DeviceAttention attention(const AttentionWeights& w) {
    DeviceAttention d;
    d.wq_a = linear(w.wq_a);
    d.wq_b = linear(w.wq_b);
    d.wkv = linear(w.wkv);
    d.wo_a = linear(w.wo_a);
    d.wo_b = linear(w.wo_b);
    d.q_norm = f32(w.q_norm);
    d.kv_norm = f32(w.kv_norm);
    d.attn_sink = f32(w.attn_sink);
    if (w.compressor) d.compressor = compressor(*w.compressor);
    if (w.indexer) {
      DeviceIndexer indexer;
      indexer.wq_b = linear(w.indexer->wq_b);
      indexer.weights_proj = linear(w.indexer->weights_proj);
      indexer.compressor = compressor(w.indexer->compressor);
      d.indexer = std::move(indexer);
    }
    return d;
  }

  DeviceMoe moe(size_t layer, const MoeWeights& w, const LayerSpec& spec) {
    DeviceMoe d;
    d.gate = linear(w.gate);
    if (spec.hash_routing) {
      d.tid2eid = expert_table(w.tid2eid);
    } else {
      d.gate_bias = f32(w.gate_bias);
    }
    std::vector<const TensorInfo*> w1, w2, w3;
    for (const ExpertWeights& e : w.experts) {
      w1.push_back(&info(&e.w1));
      w2.push_back(&info(&e.w2));
      w3.push_back(&info(&e.w3));
    }
    d.w13 = packed(w1, w3, fmt::format("layers.{}.ffn.experts.w13", layer));
    d.w2 = packed(w2, {}, fmt::format("layers.{}.ffn.experts.w2", layer));
    // The shared expert's w1 and w3 filled alone (their own seeds), then stacked.
    d.shared.w13 = stack_linears(linear(w.shared.w1), linear(w.shared.w3));
    d.shared.w2 = linear(w.shared.w2);
    return d;
  }

  DeviceBlock block(size_t layer) {
    const BlockWeights& b = skeleton_.blocks[layer];
    DeviceBlock d;
    d.attn_norm = f32(b.attn_norm);
    d.ffn_norm = f32(b.ffn_norm);
    d.hc_attn = hc(b.hc_attn);
    d.hc_ffn = hc(b.hc_ffn);
    d.attn = attention(b.attn);
    d.ffn = moe(layer, b.ffn, config_.layers[layer]);
    return d;
  }

 private:
  const TensorInfo& info(const void* field) const {
    const auto it = schema_.find(field);
    if (it == schema_.end()) fail("random_device_weights: a field the tensor schema does not name");
    return it->second;
  }

  uint64_t seed_for(const std::string& name) const { return derive_seed(seed_, name); }

  // The routed experts of a layer back to back, as upload_packed lays them out: expert i's rows
  // are top[i] then bottom[i] (w1 over w3), MXFP4 (then ordered for the device's expert kernels,
  // as upload_weights does). One fill covers them all, since per-expert [rows, cols] blocks back
  // to back form one [count · rows, cols] matrix.
  DevicePackedLinears packed(const std::vector<const TensorInfo*>& top,
                             const std::vector<const TensorInfo*>& bottom,
                             const std::string& name) {
    if (top.empty()) fail("random_device_weights: a MoE layer without routed experts");
    const TensorInfo& first = *top.front();
    for (size_t i = 0; i < top.size(); ++i) {
      const bool same = top[i]->shape == first.shape && top[i]->role == first.role &&
                        (bottom.empty() || bottom[i]->shape == bottom.front()->shape);
      if (!same || first.role != TensorRole::kExpertLinear) {
        fail("random_device_weights: routed expert {} of {} differs from expert 0", i, name);
      }
    }
    const int64_t rows = first.shape[0] + (bottom.empty() ? 0 : bottom.front()->shape[0]);
    const int64_t cols = first.shape[1];
    if (!bottom.empty() && bottom.front()->shape[1] != cols) {
      fail("random_device_weights: {} stacks weights of {} and {} inputs", name, cols,
           bottom.front()->shape[1]);
    }
    DevicePackedLinears p;
    p.count = int64_t(top.size());
    p.value_bytes = rows * cols / 2;
    p.scale_bytes = rows * cols / 32;
    p.storage.rows = rows;
    p.storage.cols = cols;
    p.storage.format = WeightFormat::kFp4;
    p.storage.scale_storage = ScaleStorage::kUe8m0;
    p.storage.values = DeviceBuffer<uint8_t>(size_t(p.count * p.value_bytes));
    p.storage.scales = DeviceBuffer<uint8_t>(size_t(p.count * p.scale_bytes));
    fill_random_fp4(p.storage.values.data(), p.storage.scales.data(), p.count * rows, cols,
                    1.0f / std::sqrt(float(cols)), seed_for(name), nullptr);
    order_experts_for_tensor_cores(p);
    allocated_ += p.bytes();
    return p;
  }

  const ModelConfig& config_;
  uint64_t seed_;
  ModelWeights skeleton_;  // shapes only; schema_ keys are addresses of its fields
  std::unordered_map<const void*, TensorInfo> schema_;
  size_t allocated_ = 0;  // device bytes so far
};

std::string layer_label(const LayerSpec& spec) {
  std::string label = attention_kind_name(spec.attention);
  if (spec.compress_ratio > 0) label += fmt::format(" ratio {}", spec.compress_ratio);
  return label + (spec.hash_routing ? ", hash-routed" : ", score-routed");
}

}  // namespace

size_t random_device_weights_bytes(const ModelConfig& config) {
  const ModelWeights skeleton = empty_weights(config, 0);
  size_t total = 0;
  visit_tensors(config, skeleton,
                [&](const std::string&, TensorRole role, const std::vector<int64_t>& shape,
                    const auto&) { total += tensor_bytes(role, shape); });
  return total;
}

DeviceWeights random_device_weights(const ModelConfig& config, uint64_t seed) {
  using Clock = std::chrono::steady_clock;
  const size_t needed = random_device_weights_bytes(config);
  size_t free_bytes = 0, total_bytes = 0;
  DSV4_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (needed + kHeadroomBytes > free_bytes) {
    fail(
        "random weights for {} ({} layers) need {:.2f} GiB of device memory (+ {:.2f} GiB "
        "headroom), but only {:.2f} GiB of {:.2f} GiB are free; use fewer layers",
        config.source, config.n_layers, gib(needed), gib(kHeadroomBytes), gib(free_bytes),
        gib(total_bytes));
  }
  std::fprintf(stderr, "random weights: %s, %lld layers, %.2f GiB (%.2f GiB free)\n",
               config.source.c_str(), static_cast<long long>(config.n_layers), gib(needed),
               gib(free_bytes));

  Generator g(config, seed);
  DeviceWeights d;
  const auto start = Clock::now();
  d.embed = g.embedding();
  d.norm = g.f32(g.skeleton().norm);
  d.head = g.linear(g.skeleton().head);
  d.hc_head = g.hc(g.skeleton().hc_head);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  std::fprintf(stderr, "  embedding + head: %.2f GiB in %.2f s\n", gib(g.allocated()),
               std::chrono::duration<double>(Clock::now() - start).count());
  for (size_t layer = 0; layer < g.skeleton().blocks.size(); ++layer) {
    const auto layer_start = Clock::now();
    const size_t before = g.allocated();
    d.blocks.push_back(g.block(layer));
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
    std::fprintf(stderr, "  layer %zu/%zu (%s): %.2f GiB in %.2f s\n", layer + 1,
                 g.skeleton().blocks.size(), layer_label(config.layers[layer]).c_str(),
                 gib(g.allocated() - before),
                 std::chrono::duration<double>(Clock::now() - layer_start).count());
  }
  return d;
}

}  // namespace dsv4::cuda
