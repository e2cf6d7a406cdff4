// moe_experts_gate_up where the experts run on the sm_90 decode-size kernel, which reads the
// tokens' own rows through moe_group's order: its bf16 [g | u] against the same GEMM on the rows
// moe_gather_quantized copies (each tested against the CPU elsewhere), bit for bit. Fresh random
// MXFP4 experts, routings that make narrow and wide tiles and a hot expert with several tiles,
// outputs poisoned.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/expert_weight_order.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/kernels/moe/grouping.h"
#include "gemm/gemm_test_util.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

constexpr int64_t kExperts = 16, kTopK = 6, kDim = 512, kInter = 384;

// k distinct experts per token; with `hot`, expert 3 is one of every token's.
std::vector<int32_t> route(std::mt19937_64& rng, int64_t tokens, bool hot) {
  std::vector<int32_t> ids, all(static_cast<size_t>(kExperts));
  for (int64_t t = 0; t < tokens; ++t) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    if (hot) std::swap(all[0], *std::find(all.begin(), all.end(), 3));
    ids.insert(ids.end(), all.begin(), all.begin() + kTopK);
  }
  return ids;
}

void check_gate_up_of_tokens(std::mt19937_64& rng, const PackedLinearsView& w13, int64_t tokens,
                             bool hot) {
  SCOPED_TRACE(testing::Message() << tokens << " tokens" << (hot ? ", hot expert" : ""));
  const int64_t slots = tokens * kTopK;
  const DeviceBuffer<int32_t> experts(route(rng, tokens, hot));
  const DeviceBuffer<float> x(test::random_floats(rng, static_cast<size_t>(tokens * kDim)));
  DeviceBuffer<int32_t> counts(static_cast<size_t>(kExperts)),
      offsets(static_cast<size_t>(kExperts + 1)), order(static_cast<size_t>(slots)),
      position(static_cast<size_t>(slots));
  const int64_t narrow = expert_narrow_tiles_capacity(kExperts, slots);
  const int64_t wide = expert_wide_tiles_capacity(slots);
  auto lists = test::poisoned<int32_t>(static_cast<size_t>(narrow + wide + 2));
  const ExpertTiles tiles{lists.data(), lists.data() + narrow, lists.data() + narrow + wide, narrow,
                          wide};
  DeviceBuffer<uint8_t> x_codes(static_cast<size_t>(tokens * kDim));
  DeviceBuffer<float> x_scales(static_cast<size_t>(tokens * kDim / 128));
  quantize_activations_fp8(x.data(), tokens, kDim, x_codes.data(), x_scales.data(), nullptr);
  moe_group(experts.data(), tokens, kTopK, kExperts, counts.data(), offsets.data(), order.data(),
            position.data(), &tiles, nullptr);

  const auto grouped = static_cast<size_t>(slots * 2 * kInter);
  DeviceBuffer<uint8_t> grouped_codes(static_cast<size_t>(slots * kDim));
  DeviceBuffer<float> grouped_scales(static_cast<size_t>(slots * kDim / 128));
  auto want = test::poisoned<uint16_t>(grouped);
  moe_gather_quantized(x_codes.data(), x_scales.data(), order.data(), tokens, kTopK, kDim,
                       grouped_codes.data(), grouped_scales.data(), nullptr);
  expert_scaled_gemm(grouped_codes.data(), grouped_scales.data(), offsets.data(), tokens, tiles,
                     w13, {nullptr, want.data()}, nullptr);

  // Scratch that the decode-size path leaves unused.
  auto unused_codes = test::poisoned<uint8_t>(static_cast<size_t>(slots * kDim));
  auto unused_scales = test::poisoned<float>(static_cast<size_t>(slots * kDim / 128));
  auto got = test::poisoned<uint16_t>(grouped);
  moe_experts_gate_up(x_codes.data(), x_scales.data(), order.data(), offsets.data(), tiles, tokens,
                      kTopK, w13, unused_codes.data(), unused_scales.data(), got.data(), nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> want_bits = want.download(), got_bits = got.download();
  size_t differ = 0;
  for (size_t i = 0; i < want_bits.size(); ++i) differ += want_bits[i] != got_bits[i];
  EXPECT_EQ(differ, 0u) << "of " << want_bits.size() << " [g | u] values";
}

TEST(MoeExpertsGateUp, ReadingTheTokensRowsGivesTheGatheredRowsSums) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("experts gate-up"));
  std::vector<LinearWeight> weights;
  for (int64_t e = 0; e < kExperts; ++e) weights.push_back(test::fp4_weight(rng, 2 * kInter, kDim));
  std::vector<const LinearWeight*> pointers;
  for (const LinearWeight& w : weights) pointers.push_back(&w);
  DevicePackedLinears packed = upload_packed(pointers);
  order_experts_for_tensor_cores(packed);
  if (!expert_gemm_streams(1, packed.view())) {
    GTEST_SKIP() << "no sm_90 decode-size expert kernel on this device";
  }
  // 1-3 tokens: narrow tiles only; 16: narrow and wide; 40 with a hot expert: its 40 rows in
  // three tiles.
  for (const int64_t tokens : {1, 3, 16})
    check_gate_up_of_tokens(rng, packed.view(), tokens, false);
  check_gate_up_of_tokens(rng, packed.view(), 40, true);
}

}  // namespace
}  // namespace dsv4::cuda
