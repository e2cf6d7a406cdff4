// The whole forward pass on the GPU (CudaModel) against cpu::Model in official numerics on
// synthetic:tiny: per position relative L2 of the logits and argmax agreement.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/model.h"
#include "cuda/model/cuda_model.h"
#include "gpu_test_support.h"
#include "model/model_source.h"

namespace dsv4::cuda {
namespace {

constexpr double kBound = 5e-3;
constexpr double kArgmaxAgreement = 0.99;

const LoadedModel& tiny() {
  static const LoadedModel model = load_model("synthetic:tiny");
  return model;
}

std::vector<int32_t> random_ids(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, int32_t(tiny().config.vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = dist(rng);
  return ids;
}

struct Comparison {
  double worst = 0.0, sum = 0.0;
  int64_t positions = 0, agree = 0;

  void add(const std::vector<float>& gpu, const std::vector<float>& cpu, int64_t vocab) {
    ASSERT_EQ(gpu.size(), cpu.size());
    for (size_t p = 0; p * size_t(vocab) < cpu.size(); ++p) {
      const float* g = gpu.data() + p * size_t(vocab);
      const float* c = cpu.data() + p * size_t(vocab);
      double diff = 0.0, norm = 0.0;
      for (int64_t i = 0; i < vocab; ++i) {
        diff += (double(g[i]) - c[i]) * (double(g[i]) - c[i]);
        norm += double(c[i]) * c[i];
      }
      const double rel = std::isfinite(diff) ? std::sqrt(diff / norm) : INFINITY;
      worst = std::max(worst, rel);
      sum += rel;
      ++positions;
      agree += std::max_element(g, g + vocab) - g == std::max_element(c, c + vocab) - c;
    }
  }
  void check(const char* name) const {
    std::printf("%s: %lld positions, rel L2 worst %.3e mean %.3e, argmax agreement %.4f\n", name,
                static_cast<long long>(positions), worst, sum / double(positions),
                double(agree) / double(positions));
    EXPECT_LE(worst, kBound) << name;
    EXPECT_GE(double(agree) / double(positions), kArgmaxAgreement) << name;
  }
};

TEST(CudaModel, Prefill150) {
  DSV4_REQUIRE_GPU();
  const LoadedModel& m = tiny();
  cpu::Model cpu_model(m.config, m.weights, Numerics::kOfficial);
  CudaModel gpu(m.config, m.weights, 2, 256, 1024);
  const std::vector<int32_t> ids = random_ids(150, 1);

  auto seq = cpu_model.new_sequence();
  const cpu::Model::Chunk cc{seq.get(), ids};
  const std::vector<float> want = cpu_model.forward({&cc, 1});
  const int32_t slot = gpu.admit();
  const CudaModel::Chunk gc{slot, ids};
  const std::vector<float> got = gpu.forward({&gc, 1});
  Comparison cmp;
  cmp.add(got, want, m.config.vocab_size);
  cmp.check("prefill 150");
}

TEST(CudaModel, PrefillThenDecode) {
  DSV4_REQUIRE_GPU();
  const LoadedModel& m = tiny();
  cpu::Model cpu_model(m.config, m.weights, Numerics::kOfficial);
  CudaModel gpu(m.config, m.weights, 2, 256, 1024);
  const std::vector<int32_t> ids = random_ids(150, 2);
  const std::span<const int32_t> all(ids);

  auto seq = cpu_model.new_sequence();
  const int32_t slot = gpu.admit();
  Comparison prefill, decode;
  {
    const cpu::Model::Chunk cc{seq.get(), all.first(120)};
    const CudaModel::Chunk gc{slot, all.first(120)};
    prefill.add(gpu.forward({&gc, 1}), cpu_model.forward({&cc, 1}), m.config.vocab_size);
  }
  for (size_t i = 120; i < 150; ++i) {
    const cpu::Model::Chunk cc{seq.get(), all.subspan(i, 1)};
    const CudaModel::Chunk gc{slot, all.subspan(i, 1)};
    decode.add(gpu.forward({&gc, 1}), cpu_model.forward({&cc, 1}), m.config.vocab_size);
  }
  EXPECT_EQ(gpu.length(slot), 150);
  prefill.check("prefill 120");
  decode.check("decode 30");
}

TEST(CudaModel, TwoSequencesInOneBatch) {
  DSV4_REQUIRE_GPU();
  const LoadedModel& m = tiny();
  cpu::Model cpu_model(m.config, m.weights, Numerics::kOfficial);
  CudaModel gpu(m.config, m.weights, 3, 256, 1024);
  const std::vector<int32_t> a = random_ids(70, 3), b = random_ids(90, 4);

  auto sa = cpu_model.new_sequence(), sb = cpu_model.new_sequence();
  const int32_t ga = gpu.admit(), gb = gpu.admit();
  Comparison cmp;
  {
    // Step 1: two prefill chunks.
    const cpu::Model::Chunk cc[] = {{sa.get(), std::span(a).first(50)},
                                    {sb.get(), std::span(b).first(80)}};
    const CudaModel::Chunk gc[] = {{ga, std::span(a).first(50)}, {gb, std::span(b).first(80)}};
    cmp.add(gpu.forward(gc), cpu_model.forward(cc), m.config.vocab_size);
  }
  {
    // Step 2: a prefill chunk beside a decode token.
    const cpu::Model::Chunk cc[] = {{sb.get(), std::span(b).subspan(80, 1)},
                                    {sa.get(), std::span(a).subspan(50, 20)}};
    const CudaModel::Chunk gc[] = {{gb, std::span(b).subspan(80, 1)},
                                   {ga, std::span(a).subspan(50, 20)}};
    cmp.add(gpu.forward(gc), cpu_model.forward(cc), m.config.vocab_size);
  }
  for (size_t i = 81; i < 90; ++i) {
    // Decode steps of both.
    const std::vector<int32_t> next = random_ids(1, uint32_t(100 + i));
    const cpu::Model::Chunk cc[] = {{sa.get(), next}, {sb.get(), std::span(b).subspan(i, 1)}};
    const CudaModel::Chunk gc[] = {{ga, next}, {gb, std::span(b).subspan(i, 1)}};
    cmp.add(gpu.forward(gc), cpu_model.forward(cc), m.config.vocab_size);
  }
  cmp.check("two sequences");
  gpu.release(ga);
  gpu.release(gb);
}

}  // namespace
}  // namespace dsv4::cuda

namespace dsv4::cuda {
namespace {

// Diagnostics: a prefill through the first n layers, optionally with the attention or the
// MoE output zeroed (wo_b / w2 values set to 0 in both models), errors per 16 positions.
double diagnose(int64_t n_layers, bool zero_attention, bool zero_moe) {
  const LoadedModel& m = tiny();
  ModelConfig config = m.config;
  config.n_layers = n_layers;
  config.layers.resize(size_t(n_layers));
  ModelWeights weights = m.weights;
  weights.blocks.resize(size_t(n_layers));
  weights.mtp.clear();
  for (BlockWeights& b : weights.blocks) {
    if (zero_attention) std::fill(b.attn.wo_b.values.begin(), b.attn.wo_b.values.end(), 0.0f);
    if (zero_moe) {
      for (ExpertWeights& e : b.ffn.experts)
        std::fill(e.w2.values.begin(), e.w2.values.end(), 0.0f);
      std::fill(b.ffn.shared.w2.values.begin(), b.ffn.shared.w2.values.end(), 0.0f);
    }
  }
  cpu::Model cpu_model(config, weights, Numerics::kOfficial);
  CudaModel gpu(config, weights, 1, 160, 1024);
  const std::vector<int32_t> ids = random_ids(128, 7);
  auto seq = cpu_model.new_sequence();
  const cpu::Model::Chunk cc{seq.get(), ids};
  const std::vector<float> want = cpu_model.forward({&cc, 1});
  const CudaModel::Chunk gc{gpu.admit(), ids};
  const std::vector<float> got = gpu.forward({&gc, 1});
  const int64_t vocab = config.vocab_size;
  Comparison all;
  all.add(got, want, vocab);
  std::printf("layers %lld%s%s:", static_cast<long long>(n_layers),
              zero_attention ? " no-attn" : "", zero_moe ? " no-moe" : "");
  for (int64_t p0 = 0; p0 < 128; p0 += 16) {
    Comparison part;
    const std::vector<float> g(got.begin() + p0 * vocab, got.begin() + (p0 + 16) * vocab);
    const std::vector<float> c(want.begin() + p0 * vocab, want.begin() + (p0 + 16) * vocab);
    part.add(g, c, vocab);
    std::printf(" [%lld] %.1e/%.2f", static_cast<long long>(p0), part.worst,
                double(part.agree) / double(part.positions));
  }
  std::printf("\n");
  return all.worst;
}

TEST(CudaModelDiagnostics, LayerPrefixes) {
  DSV4_REQUIRE_GPU();
  // One layer (sliding window, hash-routed MoE) matches the CPU to fp32 rounding (measured
  // on an H200: worst 9e-8); deeper prefixes are printed only: this random model amplifies
  // single bf16 / FP8 rounding flips (see the report of issue 4).
  EXPECT_LE(diagnose(1, true, true), kBound);
  EXPECT_LE(diagnose(1, false, true), kBound);
  EXPECT_LE(diagnose(1, true, false), kBound);
  EXPECT_LE(diagnose(1, false, false), kBound);
  for (int64_t n = 2; n <= 6; ++n) {
    diagnose(n, false, true);
    diagnose(n, false, false);
  }
}

}  // namespace
}  // namespace dsv4::cuda

namespace dsv4::cuda {
namespace {

// A one-layer model made of layer `index` of synthetic:tiny (its kind of attention and
// routing): 120-token prefill, 30 decode steps, then two sequences in one batch.
void single_layer(int64_t index) {
  const LoadedModel& m = tiny();
  ModelConfig config = m.config;
  config.n_layers = 1;
  config.layers = {m.config.layers[size_t(index)]};
  ModelWeights weights = m.weights;
  weights.blocks = {m.weights.blocks[size_t(index)]};
  weights.mtp.clear();
  cpu::Model cpu_model(config, weights, Numerics::kOfficial);
  CudaModel gpu(config, weights, 2, 160, 1024);
  const std::vector<int32_t> ids = random_ids(150, uint32_t(20 + index));
  const std::span<const int32_t> all(ids);
  auto seq = cpu_model.new_sequence(), other = cpu_model.new_sequence();
  const int32_t slot = gpu.admit(), other_slot = gpu.admit();
  Comparison cmp;
  {
    const cpu::Model::Chunk cc{seq.get(), all.first(120)};
    const CudaModel::Chunk gc{slot, all.first(120)};
    cmp.add(gpu.forward({&gc, 1}), cpu_model.forward({&cc, 1}), config.vocab_size);
  }
  for (size_t i = 120; i < 150; ++i) {
    // The decode token beside a growing second sequence (prefill chunks of 4).
    const auto chunk = all.subspan((i - 120) * 4, 4);
    const cpu::Model::Chunk cc[] = {{seq.get(), all.subspan(i, 1)}, {other.get(), chunk}};
    const CudaModel::Chunk gc[] = {{slot, all.subspan(i, 1)}, {other_slot, chunk}};
    cmp.add(gpu.forward(gc), cpu_model.forward(cc), config.vocab_size);
  }
  char name[64];
  std::snprintf(name, sizeof(name), "one layer like layer %lld (%s)", static_cast<long long>(index),
                attention_kind_name(config.layers[0].attention));
  cmp.check(name);
}

TEST(CudaModelLayers, SingleLayerModels) {
  DSV4_REQUIRE_GPU();
  single_layer(0);  // sliding window, hash routing
  single_layer(2);  // CSA, hash routing
  single_layer(3);  // HCA, score routing
  single_layer(4);  // CSA, score routing
}

}  // namespace
}  // namespace dsv4::cuda
