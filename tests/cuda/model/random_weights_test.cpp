// Random device weights and random KV context (the `dsv4 bench` inputs) on synthetic:tiny's
// config: valid encodings in every format, the schema's shapes, determinism by seed, and a
// CudaModel that runs prefill and decode on them with finite logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/formats.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/device_weights.h"
#include "cuda/model/random_fill.h"
#include "cuda/model/random_weights.h"
#include "cuda/runtime/check.h"
#include "gpu_test_support.h"
#include "model/synthetic.h"

namespace dsv4::cuda {
namespace {

const ModelConfig& tiny() {
  static const ModelConfig config = synthetic_config("tiny");
  return config;
}

template <typename T>
std::vector<T> download_as(const DeviceBuffer<uint8_t>& buffer) {
  std::vector<uint8_t> bytes = buffer.download();
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

bool all_finite(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
}

// Standard deviation of an FP8 linear's dequantized values.
double fp8_stddev(const DeviceLinear& w) {
  const std::vector<uint8_t> codes = w.values.download();
  const std::vector<float> scales = download_as<float>(w.scales);
  const int64_t scale_cols = (w.cols + 127) / 128;
  double sum = 0.0, squares = 0.0;
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) {
      const double v = double(e4m3_to_float(codes[size_t(r * w.cols + c)])) *
                       scales[size_t((r / 128) * scale_cols + c / 128)];
      sum += v;
      squares += v * v;
    }
  }
  const double n = double(w.rows * w.cols);
  return std::sqrt(squares / n - (sum / n) * (sum / n));
}

TEST(RandomWeights, FormatsShapesAndValues) {
  DSV4_REQUIRE_GPU();
  const ModelConfig& c = tiny();
  const DeviceWeights w = random_device_weights(c, 7);
  ASSERT_EQ(w.blocks.size(), size_t(c.n_layers));
  EXPECT_EQ(w.embed.size(), size_t(c.vocab_size * c.dim));
  std::vector<float> embed;
  for (const uint16_t bits : w.embed.download()) embed.push_back(bf16_to_float(bits));
  EXPECT_TRUE(all_finite(embed));

  const DeviceLinear& wq_b = w.blocks[0].attn.wq_b;
  EXPECT_EQ(wq_b.format, WeightFormat::kFp8);
  EXPECT_EQ(wq_b.scale_storage, ScaleStorage::kF32);
  EXPECT_EQ(wq_b.rows, c.n_heads * c.head_dim);
  EXPECT_EQ(wq_b.cols, c.q_lora_rank);
  for (const uint8_t code : wq_b.values.download()) ASSERT_NE(code & 0x7f, 0x7f) << "e4m3 NaN";
  for (const float s : download_as<float>(wq_b.scales)) {
    ASSERT_TRUE(std::isfinite(s) && s > 0.0f);
    ASSERT_EQ(s, std::exp2(std::round(std::log2(s)))) << "a scale that is not a power of two";
  }
  // Unit-gain linears: values ~ N(0, 1/cols) (the bounded variates have variance exactly 1).
  EXPECT_NEAR(fp8_stddev(wq_b) * std::sqrt(double(wq_b.cols)), 1.0, 0.1);
  EXPECT_EQ(w.blocks[0].attn.wo_a.format, WeightFormat::kBF16);
  EXPECT_EQ(w.head.format, WeightFormat::kBF16);
  EXPECT_EQ(w.head.rows, c.vocab_size);

  for (size_t l = 0; l < w.blocks.size(); ++l) {
    const LayerSpec& spec = c.layers[l];
    const DeviceBlock& b = w.blocks[l];
    EXPECT_EQ(b.attn.compressor.has_value(), spec.attention != AttentionKind::kSlidingWindow);
    EXPECT_EQ(b.attn.indexer.has_value(), spec.attention == AttentionKind::kCompressedSparse);
    const DeviceMoe& m = b.ffn;
    EXPECT_EQ(m.w13.count, c.n_routed_experts);
    EXPECT_EQ(m.w13.storage.rows, 2 * c.moe_inter_dim);
    EXPECT_EQ(m.w13.storage.cols, c.dim);
    EXPECT_EQ(m.w13.storage.format, WeightFormat::kFp4);
    EXPECT_EQ(m.w13.storage.scale_storage, ScaleStorage::kUe8m0);
    EXPECT_EQ(m.w13.value_bytes, 2 * c.moe_inter_dim * c.dim / 2);
    EXPECT_EQ(m.w2.storage.rows, c.dim);
    EXPECT_EQ(m.w2.storage.cols, c.moe_inter_dim);
    EXPECT_EQ(m.w2.storage.values.size(), size_t(m.w2.count * m.w2.value_bytes));
    for (const uint8_t s : m.w2.storage.scales.download()) {
      // ue8m0 of amax / 6 for values ~ N(0, 1/cols): well inside 2^-16 .. 2^0.
      ASSERT_GE(s, 127 - 16);
      ASSERT_LE(s, 127);
    }
    EXPECT_EQ(m.shared.w13.format, WeightFormat::kFp8);
    EXPECT_EQ(m.shared.w13.rows, 2 * c.moe_inter_dim);
    if (spec.hash_routing) {
      EXPECT_EQ(m.gate_bias.size(), 0u);
      const std::vector<int32_t> table = m.tid2eid.download();
      const auto k = size_t(c.n_activated_experts);
      ASSERT_EQ(table.size(), size_t(c.vocab_size) * k);
      for (size_t t = 0; t < table.size(); t += k) {
        const std::set<int32_t> ids(table.begin() + std::ptrdiff_t(t),
                                    table.begin() + std::ptrdiff_t(t + k));
        ASSERT_EQ(ids.size(), k) << "token " << t / k << " names an expert twice";
        ASSERT_GE(*ids.begin(), 0);
        ASSERT_LT(*ids.rbegin(), c.n_routed_experts);
      }
    } else {
      EXPECT_EQ(m.tid2eid.size(), 0u);
      EXPECT_EQ(m.gate_bias.size(), size_t(c.n_routed_experts));
    }
  }
  const std::vector<float> norm = w.blocks[1].attn_norm.download();
  EXPECT_TRUE(all_finite(norm));
  for (const float v : norm) EXPECT_NEAR(v, 1.0f, 0.4f);
}

TEST(RandomWeights, SameSeedSameBits) {
  DSV4_REQUIRE_GPU();
  const DeviceWeights a = random_device_weights(tiny(), 11);
  const DeviceWeights b = random_device_weights(tiny(), 11);
  const DeviceWeights other = random_device_weights(tiny(), 12);
  EXPECT_EQ(a.embed.download(), b.embed.download());
  EXPECT_EQ(a.blocks[2].attn.wq_a.values.download(), b.blocks[2].attn.wq_a.values.download());
  EXPECT_EQ(a.blocks[2].ffn.w13.storage.values.download(),
            b.blocks[2].ffn.w13.storage.values.download());
  EXPECT_EQ(a.blocks[0].ffn.tid2eid.download(), b.blocks[0].ffn.tid2eid.download());
  EXPECT_NE(a.blocks[2].ffn.w13.storage.values.download(),
            other.blocks[2].ffn.w13.storage.values.download());
  EXPECT_NE(a.embed.download(), other.embed.download());
}

TEST(RandomWeights, NeedsAreCounted) {
  DSV4_REQUIRE_GPU();
  const DeviceWeights w = random_device_weights(tiny(), 5);
  // Linears and the embedding are the bulk of it; norms, mHC parameters and tables add little.
  const size_t needed = random_device_weights_bytes(tiny());
  EXPECT_GE(needed, w.bytes());
  EXPECT_LE(needed, w.bytes() + w.bytes() / 10);
  ModelConfig huge = preset_config("pro");
  EXPECT_GT(random_device_weights_bytes(huge), size_t(500) << 30);  // ~800 GiB
  EXPECT_THROW(random_device_weights(huge, 1), Error);
}

// Reads rows [0, count) of `slot` back from a paged view.
std::vector<uint8_t> gather(const PagedRowsView& view, int32_t slot, int64_t count) {
  const DeviceBuffer<int32_t> slots(std::vector<int32_t>(size_t(count), slot));
  std::vector<int32_t> index(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) index[size_t(i)] = int32_t(i);
  const DeviceBuffer<int32_t> indices(index);
  DeviceBuffer<uint8_t> rows(size_t(count) * size_t(view.row_bytes));
  gather_rows(view, slots.data(), indices.data(), rows.data(), int32_t(count), nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return rows.download();
}

TEST(RandomFill, KvRowsAndIndexKeysDecode) {
  DSV4_REQUIRE_GPU();
  const ModelConfig& c = tiny();
  KvCacheConfig kc = kv_cache_config(c, 2, 512, 128, 32);
  KvCache cache(kc);
  const int32_t slot = cache.admit(nullptr);
  cache.reserve(slot, 300, nullptr);
  const int32_t csa = 2;
  ASSERT_EQ(c.layers[csa].attention, AttentionKind::kCompressedSparse);
  const int64_t entries = 300 / c.layers[csa].compress_ratio;
  const KvRowFormat row_format{size_t(c.head_dim), size_t(c.rope_head_dim)};
  const IndexKeyFormat key_format{size_t(kc.index_dim)};

  fill_random_kv_rows(cache.entry_rows(csa), slot, entries, kc.head_dim, kc.rope_dim, 3, nullptr);
  fill_random_index_keys(cache.index_key_rows(csa), slot, entries, kc.index_dim, 4, nullptr);
  const std::vector<uint8_t> rows = gather(cache.entry_rows(csa), slot, entries);
  const std::vector<uint8_t> keys = gather(cache.index_key_rows(csa), slot, entries);

  double squares = 0.0;
  std::vector<float> row(size_t(c.head_dim)), key(size_t(kc.index_dim));
  for (int64_t r = 0; r < entries; ++r) {
    const uint8_t* bytes = rows.data() + size_t(r * cache.kv_row_bytes());
    for (size_t b = 0; b < row_format.scale_count(); ++b) {
      const uint8_t scale = bytes[row_format.nope_dim() + 2 * c.rope_head_dim + b];
      ASSERT_GE(scale, 127 - 8);  // 2^-8 .. 2^0
      ASSERT_LE(scale, 127);
    }
    row_format.decode(bytes, row.data());
    ASSERT_TRUE(all_finite(row)) << "row " << r;
    for (const float v : row) {
      ASSERT_LE(std::fabs(v), 3.5f);
      squares += double(v) * v;
    }
    key_format.decode(keys.data() + size_t(r * cache.index_key_bytes()), key.data());
    ASSERT_TRUE(all_finite(key)) << "key " << r;
    for (const float v : key) ASSERT_LE(std::fabs(v), 8.0f);
  }
  EXPECT_NEAR(squares / double(entries * c.head_dim), 1.0, 0.1);  // unit variance

  // Deterministic: the same seed rewrites the same bytes, another seed different ones.
  fill_random_kv_rows(cache.entry_rows(csa), slot, entries, kc.head_dim, kc.rope_dim, 3, nullptr);
  EXPECT_EQ(gather(cache.entry_rows(csa), slot, entries), rows);
  fill_random_kv_rows(cache.entry_rows(csa), slot, entries, kc.head_dim, kc.rope_dim, 5, nullptr);
  EXPECT_NE(gather(cache.entry_rows(csa), slot, entries), rows);
}

TEST(RandomWeights, CudaModelRunsWithFiniteLogits) {
  DSV4_REQUIRE_GPU();
  const ModelConfig& c = tiny();
  CudaModel model(c, random_device_weights(c, 3), CudaModelLimits{3, 64, 512});
  const auto check = [&](const std::vector<float>& logits, size_t tokens, const char* what) {
    ASSERT_EQ(logits.size(), tokens * size_t(c.vocab_size)) << what;
    EXPECT_TRUE(all_finite(logits)) << what;
  };

  // A real prompt.
  const int32_t prompt_slot = model.admit();
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919) % 129280);
  const CudaModel::Chunk prefill{prompt_slot, prompt};
  check(model.forward({&prefill, 1}), prompt.size(), "prefill");

  // A random context past several windows and compressed entries of every kind.
  const int32_t filled = model.admit();
  model.fill_random_context(filled, 300, 9);
  EXPECT_EQ(model.length(filled), 300);
  EXPECT_THROW(model.fill_random_context(filled, 10, 9), Error);  // not empty
  EXPECT_THROW(model.fill_random_context(7, 10, 9), Error);       // not admitted

  for (int32_t step = 0; step < 6; ++step) {
    const int32_t ids[2] = {101 + step, 2024 + step};
    const CudaModel::Chunk chunks[2] = {{prompt_slot, {&ids[0], 1}}, {filled, {&ids[1], 1}}};
    check(model.forward(chunks), 2, "decode");
  }
  EXPECT_EQ(model.length(filled), 306);
  EXPECT_EQ(model.length(prompt_slot), 46);
  model.release(filled);
}

}  // namespace
}  // namespace dsv4::cuda
