#include "model/synthetic.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string_view>
#include <type_traits>

#include "core/error.h"
#include "core/formats.h"
#include "core/quantize.h"
#include "core/thread_pool.h"
#include "model/synthetic_random.h"
#include "model/tensor_schema.h"

namespace dsv4 {
namespace {

constexpr int64_t kFp8WeightBlock = 128;

ModelConfig common_config() {
  ModelConfig c = deepseek_v4_shared_settings();
  c.dim = 256;
  c.route_scale = 1.5;
  c.max_seq_len = 8192;
  return c;
}

// Layers 0-1 sliding window, then CSA (ratio 4) and HCA alternating; the first three layers
// route by token hash, as in the published models.
std::vector<LayerSpec> schedule(int64_t n_layers, int64_t hca_ratio) {
  std::vector<LayerSpec> layers;
  for (int64_t i = 0; i < n_layers; ++i) {
    LayerSpec layer;
    if (i >= 2) {
      const bool csa = i % 2 == 0;
      layer.attention = csa ? AttentionKind::kCompressedSparse : AttentionKind::kHeavilyCompressed;
      layer.compress_ratio = csa ? 4 : hca_ratio;
    }
    layer.hash_routing = i < 3;
    layers.push_back(layer);
  }
  return layers;
}

// Fills `out` with n normal-like values of standard deviation `stddev` around `mean`, from the
// stream `seed`; rows of `row_length` values are drawn in parallel from their own streams.
void fill_normal(std::vector<float>& out, int64_t n, int64_t row_length, uint64_t seed, float mean,
                 float stddev) {
  out.resize(size_t(n));
  const int64_t rows = n / row_length;
  const size_t grain = size_t(std::max<int64_t>(1, 65536 / row_length));
  ThreadPool::global().parallel_for(size_t(rows), grain, [&](size_t begin, size_t end) {
    for (size_t row = begin; row < end; ++row) {
      SplitMix64 rng(derive_seed(seed, uint64_t(row)));
      float* dst = out.data() + row * size_t(row_length);
      for (int64_t i = 0; i < row_length; ++i) dst[i] = mean + stddev * normalish(rng.next());
    }
  });
}

void round_to_bf16(std::vector<float>& values) {
  for (float& v : values) v = round_bf16(v);
}

// FP8 e4m3 values with one power-of-two scale per 128x128 block, from random floats.
void quantize_fp8_blocks(const std::vector<float>& x, LinearWeight& w) {
  const int64_t block_rows = (w.rows + kFp8WeightBlock - 1) / kFp8WeightBlock;
  const int64_t block_cols = (w.cols + kFp8WeightBlock - 1) / kFp8WeightBlock;
  w.values.resize(x.size());
  w.scales.resize(size_t(block_rows * block_cols));
  ThreadPool::global().parallel_for(size_t(block_rows), 1, [&](size_t begin, size_t end) {
    for (int64_t br = int64_t(begin); br < int64_t(end); ++br) {
      const int64_t r0 = br * kFp8WeightBlock, r1 = std::min(w.rows, r0 + kFp8WeightBlock);
      for (int64_t bc = 0; bc < block_cols; ++bc) {
        const int64_t c0 = bc * kFp8WeightBlock, c1 = std::min(w.cols, c0 + kFp8WeightBlock);
        float amax = 0.0f;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t c = c0; c < c1; ++c)
            amax = std::max(amax, std::fabs(x[size_t(r * w.cols + c)]));
        }
        const float scale = fp8_block_scale(amax);
        w.scales[size_t(br * block_cols + bc)] = scale;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t c = c0; c < c1; ++c) {
            const size_t i = size_t(r * w.cols + c);
            w.values[i] =
                e4m3_to_float(float_to_e4m3(std::clamp(x[i] / scale, -kE4m3Max, kE4m3Max)));
          }
        }
      }
    }
  });
}

// MXFP4: e2m1 values with one power-of-two scale per 32 inputs of each row.
void quantize_fp4_rows(const std::vector<float>& x, LinearWeight& w) {
  const int64_t blocks = w.cols / int64_t(kFp4Block);
  w.values.resize(x.size());
  w.scales.resize(size_t(w.rows * blocks));
  ThreadPool::global().parallel_for(size_t(w.rows), 16, [&](size_t begin, size_t end) {
    std::vector<uint8_t> packed(size_t(w.cols / 2));
    std::vector<uint8_t> codes(static_cast<size_t>(blocks));
    for (size_t r = begin; r < end; ++r) {
      quantize_fp4(x.data() + r * size_t(w.cols), size_t(w.cols), packed.data(), codes.data());
      float* values = w.values.data() + r * size_t(w.cols);
      for (size_t j = 0; j < packed.size(); ++j) {
        values[2 * j] = e2m1_to_float(packed_e2m1_low(packed[j]));
        values[2 * j + 1] = e2m1_to_float(packed_e2m1_high(packed[j]));
      }
      for (int64_t b = 0; b < blocks; ++b) {
        w.scales[r * size_t(blocks) + size_t(b)] = ue8m0_to_float(codes[size_t(b)]);
      }
    }
  });
}

void make_linear(LinearWeight& w, const std::string& name, TensorRole role,
                 const std::vector<int64_t>& shape, uint64_t seed) {
  w.rows = shape[0];
  w.cols = shape[1];
  // Unit-variance inputs give unit-variance outputs; the embedding itself is unit-variance.
  const float stddev = name == "embed.weight" ? 1.0f : 1.0f / std::sqrt(float(w.cols));
  std::vector<float> x;
  fill_normal(x, w.rows * w.cols, w.cols, seed, 0.0f, stddev);
  switch (role) {
    case TensorRole::kQuantizedLinear:
      w.format = WeightFormat::kFp8;
      quantize_fp8_blocks(x, w);
      return;
    case TensorRole::kExpertLinear:
      w.format = WeightFormat::kFp4;
      quantize_fp4_rows(x, w);
      return;
    default:
      w.format = WeightFormat::kBF16;
      round_to_bf16(x);
      w.values = std::move(x);
      return;
  }
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// fp32 parameters by what they feed: mHC mixing weights small (the mixes stay O(1)), mHC
// biases and scales O(1), sinks, position biases and routing biases modest.
void make_parameter(std::vector<float>& out, const std::string& name,
                    const std::vector<int64_t>& shape, uint64_t seed) {
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  const int64_t row = shape.back();
  float mean = 0.0f, stddev = 1.0f;
  if (ends_with(name, "_fn")) {
    stddev = 0.5f / std::sqrt(float(row));
  } else if (ends_with(name, "_base")) {
    stddev = 0.5f;
  } else if (ends_with(name, "_scale")) {
    mean = 1.0f;
    stddev = 0.25f;
  } else if (ends_with(name, "ape")) {
    stddev = 0.5f;
  } else if (ends_with(name, "gate.bias")) {
    stddev = 0.1f;
  }
  fill_normal(out, n, row, seed, mean, stddev);
}

// Each token's experts: n_activated distinct ids (a partial Fisher-Yates shuffle per token).
void make_expert_table(std::vector<int32_t>& out, const ModelConfig& c, uint64_t seed) {
  const int64_t k = c.n_activated_experts;
  out.resize(size_t(c.vocab_size * k));
  ThreadPool::global().parallel_for(size_t(c.vocab_size), 4096, [&](size_t begin, size_t end) {
    std::vector<int32_t> ids(size_t(c.n_routed_experts));
    for (size_t token = begin; token < end; ++token) {
      std::iota(ids.begin(), ids.end(), 0);
      SplitMix64 rng(derive_seed(seed, uint64_t(token)));
      for (int64_t j = 0; j < k; ++j) {
        const uint64_t pick = uint64_t(j) + rng.below(uint64_t(c.n_routed_experts - j));
        std::swap(ids[size_t(j)], ids[pick]);
        out[token * size_t(k) + size_t(j)] = ids[size_t(j)];
      }
    }
  });
}

}  // namespace

ModelConfig synthetic_config(const std::string& name) {
  ModelConfig c = common_config();
  if (name == "tiny") {
    c.n_layers = 6;
    c.n_heads = 4;
    c.head_dim = 128;
    c.q_lora_rank = 128;
    c.o_groups = 2;
    c.o_lora_rank = 64;
    c.n_routed_experts = 8;
    c.n_activated_experts = 2;
    c.moe_inter_dim = 128;
    c.window_size = 32;
    c.index_n_heads = 4;
    c.index_topk = 16;
    c.layers = schedule(c.n_layers, 16);
  } else if (name == "small") {
    c.n_layers = 8;
    c.n_heads = 8;
    c.head_dim = 192;
    c.q_lora_rank = 256;
    c.o_groups = 4;
    c.o_lora_rank = 128;
    c.n_routed_experts = 16;
    c.n_activated_experts = 4;
    c.moe_inter_dim = 256;
    c.window_size = 64;
    c.index_n_heads = 8;
    c.index_topk = 32;
    c.layers = schedule(c.n_layers, 32);
  } else {
    fail("synthetic model '{}' does not exist (expected synthetic:tiny or synthetic:small)", name);
  }
  c.source = "synthetic:" + name;
  c.validate();
  return c;
}

ModelWeights synthetic_weights(const ModelConfig& config, uint64_t seed) {
  ModelWeights weights = empty_weights(config, config.n_mtp_layers);
  visit_tensors(config, weights,
                [&](const std::string& name, TensorRole role, const std::vector<int64_t>& shape,
                    auto& field) {
                  const uint64_t tensor_seed = derive_seed(seed, name);
                  using Field = std::remove_cvref_t<decltype(field)>;
                  if constexpr (std::is_same_v<Field, LinearWeight>) {
                    make_linear(field, name, role, shape, tensor_seed);
                  } else if constexpr (std::is_same_v<Field, std::vector<int32_t>>) {
                    make_expert_table(field, config, tensor_seed);
                  } else if (role == TensorRole::kNormWeight) {
                    fill_normal(field, shape[0], shape[0], tensor_seed, 1.0f, 0.1f);
                    round_to_bf16(field);
                  } else {
                    make_parameter(field, name, shape, tensor_seed);
                  }
                });
  return weights;
}

}  // namespace dsv4
