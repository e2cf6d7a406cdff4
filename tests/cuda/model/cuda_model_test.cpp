// The whole forward pass on the GPU (CudaModel) against cpu::Model in official numerics.
//
// Official numerics quantize activations to FP8 before every FP8/FP4 GEMM, so two correct
// implementations that add in different orders disagree wherever a value lands on the other
// side of an e4m3 / bf16 rounding boundary: one whole step, amplified by the layers after it.
// The GPU is therefore held to two standards: on well-conditioned models (sublayer outputs
// scaled down, as in trained models whose residual stream dominates) the acceptance bound
// itself, and on the raw random synthetic:tiny the floor set by the CPU against itself in
// another summation order (tests/cpu/summation_order_test.cpp). The decode path (graphs,
// window ring, compressor state) is checked bit for bit against the GPU's own prefill.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "core/error.h"
#include "cpu/linear.h"
#include "cpu/model.h"
#include "cuda/model/cuda_model.h"
#include "gpu_test_support.h"
#include "logit_comparison.h"
#include "model/model_source.h"
#include "model_variants.h"

namespace dsv4::cuda {
namespace {

using dsv4::testing::LogitComparison;
using dsv4::testing::random_token_ids;
using dsv4::testing::synthetic_tiny;

constexpr double kBound = 5e-3;
constexpr double kArgmaxAgreement = 0.99;

// One schedule of steps for two sequences: a 120-token prefill of A, then 30 steps of A's next
// token beside a 4-token prefill chunk of B. Returns every step's logits, concatenated.
template <class Model, class Sequence>
std::vector<float> run_schedule(Model& model, Sequence a, Sequence b,
                                const std::vector<int32_t>& ids) {
  using Chunk = typename Model::Chunk;
  const std::span<const int32_t> all(ids);
  std::vector<float> logits;
  const auto append = [&](std::span<const Chunk> chunks) {
    const std::vector<float> step = model.forward(chunks);
    logits.insert(logits.end(), step.begin(), step.end());
  };
  const Chunk prefill[] = {{a, all.first(120)}};
  append(prefill);
  for (size_t i = 120; i < 150; ++i) {
    const Chunk step[] = {{a, all.subspan(i, 1)}, {b, all.subspan((i - 120) * 4, 4)}};
    append(step);
  }
  return logits;
}

std::vector<float> cpu_schedule(const LoadedModel& m, const std::vector<int32_t>& ids,
                                cpu::SummationOrder order) {
  cpu::set_summation_order(order);
  cpu::Model model(m.config, m.weights, Numerics::kOfficial);
  auto a = model.new_sequence(), b = model.new_sequence();
  std::vector<float> logits = run_schedule(model, a.get(), b.get(), ids);
  cpu::set_summation_order(cpu::SummationOrder::kForward);
  return logits;
}

std::vector<float> gpu_schedule(const LoadedModel& m, const std::vector<int32_t>& ids) {
  CudaModel model(m.config, m.weights, {2, 160, 1024});
  const int32_t a = model.admit(), b = model.admit();
  return run_schedule(model, a, b, ids);
}

// The GPU against the CPU, and the CPU in reverse summation order against the CPU.
struct Agreement {
  LogitComparison gpu, floor;
};

Agreement compare(const LoadedModel& m, uint32_t seed, const char* name) {
  const std::vector<int32_t> ids = random_token_ids(150, seed);
  const std::vector<float> want = cpu_schedule(m, ids, cpu::SummationOrder::kForward);
  Agreement result;
  result.gpu.add(gpu_schedule(m, ids), want, m.config.vocab_size);
  result.floor.add(cpu_schedule(m, ids, cpu::SummationOrder::kReverse), want, m.config.vocab_size);
  std::printf("%s\n", name);
  result.gpu.print("  GPU vs CPU            ", kBound);
  result.floor.print("  CPU reversed vs CPU   ", kBound);
  return result;
}

TEST(CudaModel, WellConditionedSingleLayersMeetTheBound) {
  DSV4_REQUIRE_GPU();
  for (int64_t index : {0, 2, 3, 4}) {  // window/hash, CSA/hash, HCA/score, CSA/score
    const LoadedModel m = testing::scaled_sublayer_outputs(
        testing::single_layer_model(synthetic_tiny(), index), testing::kWellConditionedScale);
    char name[64];
    std::snprintf(name, sizeof(name), "one layer like layer %lld, outputs / 32",
                  static_cast<long long>(index));
    const Agreement r = compare(m, uint32_t(20 + index), name);
    EXPECT_LE(r.gpu.worst(), kBound) << name;
    EXPECT_GE(r.gpu.argmax_agreement(), kArgmaxAgreement) << name;
  }
}

TEST(CudaModel, NvFp4ExpertsMeetTheBound) {
  DSV4_REQUIRE_GPU();
  LoadedModel m = testing::scaled_sublayer_outputs(testing::single_layer_model(synthetic_tiny(), 4),
                                                   testing::kWellConditionedScale);
  m.weights = testing::with_nvfp4_experts(m.weights);
  const char* name = "one layer like layer 4, outputs / 32, NVFP4 experts";
  const Agreement r = compare(m, 24, name);
  EXPECT_LE(r.gpu.worst(), kBound) << name;
  EXPECT_GE(r.gpu.argmax_agreement(), kArgmaxAgreement) << name;
}

// The floor is a summation order; the GPU's FP8 linears also accumulate each 128-input block,
// and its FP4 experts each 32-input block, on the FP8 tensor cores (about 14 bits, as
// DeepSeek's reference GEMM on Hopper) where the CPU adds in exact fp32, which the whole random
// model amplifies further. Measured (seed 1, H200): raw model argmax 0.68 vs the floor's 0.78;
// outputs / 32: within the bound 0.64 vs 0.88 (0.74 while the experts' block sums were exact
// fp32; the margin below was 0.2 then), mean 5.1e-3 vs 4.2e-3.
TEST(CudaModel, WholeModelAgreesAsWellAsTwoCpuSummationOrders) {
  DSV4_REQUIRE_GPU();
  const LoadedModel calm =
      testing::scaled_sublayer_outputs(synthetic_tiny(), testing::kWellConditionedScale);
  for (const auto& [model, name] : {std::pair{&synthetic_tiny(), "synthetic:tiny"},
                                    std::pair{&calm, "synthetic:tiny, outputs / 32"}}) {
    const Agreement r = compare(*model, 1, name);
    EXPECT_LE(r.gpu.mean(), 2.0 * r.floor.mean() + 1e-4) << name;
    EXPECT_GE(r.gpu.fraction_within(kBound), r.floor.fraction_within(kBound) - 0.25) << name;
    EXPECT_GE(r.gpu.argmax_agreement(), r.floor.argmax_agreement() - 0.12) << name;
  }
}

// Decode steps (CUDA graphs, window ring, compressor state carried across steps) reproduce a
// single prefill of the same tokens exactly: the GPU kernels add in the same order whatever
// the batch.
TEST(CudaModel, DecodeStepsReproduceOnePrefillBitForBit) {
  DSV4_REQUIRE_GPU();
  const LoadedModel& m = synthetic_tiny();
  const std::vector<int32_t> ids = random_token_ids(100, 5);
  const std::span<const int32_t> all(ids);
  CudaModel gpu(m.config, m.weights, {3, 128, 1024});

  const int32_t whole = gpu.admit();
  const CudaModel::Chunk one[] = {{whole, all}};
  const std::vector<float> want = gpu.forward(one);

  const int32_t stepped = gpu.admit(), beside = gpu.admit();
  std::vector<float> got;
  const CudaModel::Chunk first[] = {{stepped, all.first(37)}};
  got = gpu.forward(first);
  for (size_t i = 37; i < 100; ++i) {
    // Every decode step beside another sequence's decode token: graphs for two tokens.
    const CudaModel::Chunk step[] = {{beside, all.subspan(i % 37, 1)},
                                     {stepped, all.subspan(i, 1)}};
    const std::vector<float> logits = gpu.forward(step);
    got.insert(got.end(), logits.begin() + m.config.vocab_size, logits.end());
  }
  ASSERT_EQ(got.size(), want.size());
  size_t differing = 0;
  for (size_t i = 0; i < want.size(); ++i) differing += got[i] != want[i];
  EXPECT_EQ(differing, 0u) << "of " << want.size() << " logits";
  EXPECT_EQ(gpu.length(stepped), 100);
}

TEST(CudaModel, FullStepFailsWithoutChangingState) {
  DSV4_REQUIRE_GPU();
  const LoadedModel& m = synthetic_tiny();
  CudaModel gpu(m.config, m.weights, {1, 8, 64});
  const int32_t slot = gpu.admit();
  const std::vector<int32_t> ids = random_token_ids(9, 6);
  const CudaModel::Chunk too_many[] = {{slot, ids}};
  EXPECT_THROW(gpu.forward(too_many), Error);
  EXPECT_EQ(gpu.length(slot), 0);
  EXPECT_THROW(gpu.admit(), Error);  // one slot only
  const CudaModel::Chunk fits[] = {{slot, std::span(ids).first(8)}};
  EXPECT_EQ(gpu.forward(fits).size(), size_t(8 * m.config.vocab_size));
}

}  // namespace
}  // namespace dsv4::cuda
