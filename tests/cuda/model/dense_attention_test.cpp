// Prefill steps of the CUDA model on dense attention rows (CudaModelLimits::
// dense_prefill_min_tokens), and decode steps of an HCA layer on the bf16 copies of its entries
// (CudaModelLimits::dense_hca_decode), against cpu::Model in official numerics. The path takes one
// attention
// shape only (head_dim 512, rope 64, heads a multiple of 64 on sm_90), so the model is
// synthetic:tiny with 128 heads of 512 dims and a 128-token window, one layer at a time, its
// sublayer outputs scaled down (well conditioned, as in cuda_model_test.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <span>
#include <vector>

#include "cpu/model.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/dense_attention_rows.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/device_buffer.h"
#include "gpu_test_support.h"
#include "logit_comparison.h"
#include "model/model_source.h"
#include "model/synthetic.h"
#include "model_variants.h"

namespace dsv4::cuda {
namespace {

using dsv4::testing::LogitComparison;

constexpr double kBound = 5e-3;
constexpr double kArgmaxAgreement = 0.99;
constexpr int64_t kPrompt = 300, kDecodeSteps = 3;

LoadedModel wide_attention_layer(int64_t index) {
  ModelConfig c = synthetic_config("tiny");
  c.n_heads = 128;
  c.head_dim = 512;
  c.window_size = 128;
  c.validate();
  const LoadedModel whole{c, synthetic_weights(c, 7), "synthetic:tiny, 128 heads of 512 dims", {}};
  return testing::scaled_sublayer_outputs(testing::single_layer_model(whole, index),
                                          testing::kWellConditionedScale);
}

// The prompt in one prefill step, then one decode step per further token; every step's logits.
template <class Model, class Sequence>
std::vector<float> prompt_then_decode(Model& model, Sequence seq, std::span<const int32_t> ids,
                                      const std::function<void()>& after_prefill) {
  using Chunk = typename Model::Chunk;
  const Chunk prompt[] = {{seq, ids.first(size_t(kPrompt))}};
  std::vector<float> logits = model.forward(prompt);
  after_prefill();
  for (size_t i = size_t(kPrompt); i < ids.size(); ++i) {
    const Chunk step[] = {{seq, ids.subspan(i, 1)}};
    const std::vector<float> next = model.forward(step);
    logits.insert(logits.end(), next.begin(), next.end());
  }
  return logits;
}

TEST(CudaModelDensePrefill, WindowCsaAndHcaLayersMeetTheBound) {
  DSV4_REQUIRE_GPU();
  const std::vector<int32_t> ids = testing::random_token_ids(kPrompt + kDecodeSteps, 11);
  for (int64_t index : {0, 2, 3}) {  // window, CSA, HCA
    const LoadedModel m = wide_attention_layer(index);
    cpu::Model cpu(m.config, m.weights, Numerics::kOfficial);
    auto cpu_seq = cpu.new_sequence();
    const std::vector<float> want = prompt_then_decode(cpu, cpu_seq.get(), ids, [] {});

    // Dense rows from kPrompt tokens, and (for reference, printed) never.
    LogitComparison agreement, main_kernel;
    for (const int64_t min_tokens : {kPrompt, kPrompt + 1}) {
      CudaModel gpu(m.config, m.weights,
                    {.max_sequences = 1,
                     .max_tokens_per_step = kPrompt,
                     .max_length = 512,
                     .dense_prefill_min_tokens = min_tokens,
                     .dense_hca_decode = false});
      int64_t dense_layers = -1;
      const std::vector<float> got = prompt_then_decode(
          gpu, gpu.admit(), ids, [&] { dense_layers = gpu.dense_attention_layers(); });
      const bool dense = min_tokens == kPrompt;
      EXPECT_EQ(dense_layers, dense ? 1 : 0) << "layer " << index;
      (dense ? agreement : main_kernel).add(got, want, m.config.vocab_size);
    }
    std::printf("one layer like layer %lld, 128 heads of 512 dims, outputs / 32\n",
                static_cast<long long>(index));
    agreement.print("  GPU (dense prefill) vs CPU ", kBound);
    main_kernel.print("  GPU (main kernel) vs CPU   ", kBound);
    EXPECT_EQ(agreement.positions(), kPrompt + kDecodeSteps);
    EXPECT_LE(agreement.worst(), kBound) << "layer " << index;
    EXPECT_GE(agreement.argmax_agreement(), kArgmaxAgreement) << "layer " << index;
  }
}

// A CSA layer's prefill chunk at the longest context reads every entry so far (at 1M positions
// 256K of them, 256 MB of bf16 rows): the scratch holds one such chunk, so the last chunks of a
// long prompt stay on dense rows (1.3x faster there than the main kernel, bench/RESULTS.md).
TEST(CudaModelDensePrefill, CsaChunkAtTheLongestContextStaysOnDenseRows) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "dense rows run on the sm_90 kernels only";
  constexpr int32_t kChunk = 4096, kBatchBlocks = 5, kCsaLayer = 2, kCsaRatio = 4;
  constexpr int64_t kLength = int64_t(1) << 20;
  ModelConfig c = synthetic_config("tiny");
  c.n_heads = 64;
  c.head_dim = 512;
  c.window_size = 128;
  c.validate();
  ASSERT_EQ(c.layers[kCsaLayer].compress_ratio, kCsaRatio);
  DenseAttentionRows dense(c, kChunk, kLength, kChunk, /*hca_decode=*/false);

  // One chunk: the last kChunk positions below kLength (metadata blocks as CudaModel fills them).
  std::vector<int32_t> meta(size_t((kBatchBlocks + dense.meta_blocks()) * kChunk));
  for (int32_t t = 0; t < kChunk; ++t) {
    meta[size_t(2 * kChunk + t)] = int32_t(kLength - kChunk + t);
    meta[size_t(3 * kChunk + t)] = 0;
    meta[size_t(4 * kChunk + t)] = kChunk;
  }
  ASSERT_EQ(dense.plan_step(meta.data(), kChunk, kBatchBlocks, kChunk, /*decode_only=*/false),
            dense.meta_blocks());
  const DeviceBuffer<int32_t> device_meta(meta);
  KvCacheConfig cache_config;
  cache_config.layers = {{kCsaRatio, true}};
  cache_config.max_length = kLength;
  cache_config.kv_blocks = 1;
  const KvCache cache(cache_config);
  SparseAttentionArgs args;
  args.heads = int32_t(c.n_heads);
  args.head_dim = int32_t(c.head_dim);
  args.rope_dim = int32_t(c.rope_head_dim);
  args.source = CompressedSource::kList;
  args.batch.tokens = kChunk;
  dense.apply(args, kCsaLayer, kCsaRatio, cache, device_meta.data(), kChunk, kBatchBlocks);
  EXPECT_NE(args.dense.rows, nullptr);
  EXPECT_EQ(args.dense.row_count, c.window_size + kChunk - 1 + kLength / kCsaRatio);
  EXPECT_EQ(dense.layers_in_last_step(), 1);
}

// Decode steps past two of the layer's entry boundaries (ratio 16: entries completed at positions
// 303 and 319 are written with their copies during decode), the prompt on the main kernel.
TEST(CudaModelDenseDecode, HcaLayerFromBf16EntryCopiesMeetsTheBound) {
  DSV4_REQUIRE_GPU();
  constexpr int64_t kSteps = 24;
  const std::vector<int32_t> ids = testing::random_token_ids(kPrompt + kSteps, 12);
  const LoadedModel m = wide_attention_layer(3);
  cpu::Model cpu(m.config, m.weights, Numerics::kOfficial);
  auto cpu_seq = cpu.new_sequence();
  const std::vector<float> want = prompt_then_decode(cpu, cpu_seq.get(), ids, [] {});

  CudaModel gpu(m.config, m.weights,
                {.max_sequences = 1,
                 .max_tokens_per_step = kPrompt,
                 .max_length = 512,
                 .dense_prefill_min_tokens = kPrompt + 1,
                 .dense_hca_decode = true});
  const std::vector<float> got = prompt_then_decode(gpu, gpu.admit(), ids, [] {});
  EXPECT_EQ(gpu.dense_attention_layers(), 1) << "the last decode step's HCA layer";
  LogitComparison agreement;
  agreement.add(got, want, m.config.vocab_size);
  std::printf("one HCA layer (ratio 16), 128 heads of 512 dims, outputs / 32, %lld decode steps\n",
              static_cast<long long>(kSteps));
  agreement.print("  GPU (HCA decode from bf16 entry copies) vs CPU ", kBound);
  EXPECT_EQ(agreement.positions(), kPrompt + kSteps);
  EXPECT_LE(agreement.worst(), kBound);
  EXPECT_GE(agreement.argmax_agreement(), kArgmaxAgreement);
}

}  // namespace
}  // namespace dsv4::cuda
