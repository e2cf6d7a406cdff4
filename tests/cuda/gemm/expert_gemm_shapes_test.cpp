// The routed-expert GEMM at DeepSeek-V4's own shapes: Flash (256 experts, dim 4096, inter
// 2048) and Pro (384 experts, dim 7168, inter 3072), both the w1|w3 GEMM ([2·inter, dim]) and
// w2 ([dim, inter]), 1 to 8192 tokens with 6 experts each, uniform routing and a hot expert
// that every token picks. Every expert slot holds MXFP4 weights (a few distinct random ones,
// cycled, and the inputs a pool of random rows, cycled, so that the host work stays small);
// the GEMM runs on all slots, and a sample of rows (the first and last of up to 16 experts
// with tokens, expert 0 among them) is checked against cpu::linear with the expert's weights,
// within the FP8 warpgroup MMAs' bounds (gemm_test_util.h: one MMA per 32-input block at decode
// sizes, chains of four where the step is large enough for the prefill kernel); outputs are
// poisoned first.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "cpu/linear.h"
#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/expert_weight_order.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "gemm/gemm_test_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

using test::kFp8MmaBlockBound;
using test::kFp8MmaChainBound;
constexpr int64_t kTopK = 6;
constexpr int64_t kDistinct = 3;      // distinct random expert weights, cycled over the slots
constexpr int64_t kInputPool = 1024;  // distinct random input rows, cycled over the slots

struct Shape {
  int64_t experts, rows, cols;
};

// Per-expert token counts of `tokens` tokens that each pick kTopK distinct experts; `hot`:
// expert 0 is one of every token's picks.
std::vector<int32_t> route(std::mt19937_64& rng, int64_t tokens, int64_t experts, bool hot) {
  std::vector<int32_t> counts(size_t(experts), 0);
  std::uniform_int_distribution<int64_t> pick(hot ? 1 : 0, experts - 1);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int64_t> chosen;
    if (hot) chosen.push_back(0);
    while (int64_t(chosen.size()) < kTopK) {
      const int64_t e = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    for (int64_t e : chosen) ++counts[size_t(e)];
  }
  return counts;
}

// `count` expert slots that cycle over the weights of `distinct` (copied on the device).
DevicePackedLinears cycled(const DevicePackedLinears& distinct, int64_t count) {
  DevicePackedLinears packed;
  packed.count = count;
  packed.value_bytes = distinct.value_bytes;
  packed.scale_bytes = distinct.scale_bytes;
  packed.storage.rows = distinct.storage.rows;
  packed.storage.cols = distinct.storage.cols;
  packed.storage.format = distinct.storage.format;
  packed.storage.scale_storage = distinct.storage.scale_storage;
  packed.storage.values = DeviceBuffer<uint8_t>(size_t(count * packed.value_bytes));
  packed.storage.scales = DeviceBuffer<uint8_t>(size_t(count * packed.scale_bytes));
  for (int64_t e = 0; e < count; ++e) {
    const int64_t from = e % distinct.count;
    DSV4_CUDA_CHECK(cudaMemcpy(packed.storage.values.data() + e * packed.value_bytes,
                               distinct.storage.values.data() + from * packed.value_bytes,
                               size_t(packed.value_bytes), cudaMemcpyDeviceToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(packed.storage.scales.data() + e * packed.scale_bytes,
                               distinct.storage.scales.data() + from * packed.scale_bytes,
                               size_t(packed.scale_bytes), cudaMemcpyDeviceToDevice));
  }
  return packed;
}

void check_shape(std::mt19937_64& rng, const Shape& s, int64_t tokens, bool hot) {
  SCOPED_TRACE(testing::Message() << s.experts << " experts of [" << s.rows << ", " << s.cols
                                  << "], " << tokens << " tokens" << (hot ? ", hot expert" : ""));
  std::vector<LinearWeight> weights;
  for (int64_t i = 0; i < kDistinct; ++i) weights.push_back(test::fp4_weight(rng, s.rows, s.cols));
  std::vector<const LinearWeight*> pointers;
  for (const LinearWeight& w : weights) pointers.push_back(&w);
  DevicePackedLinears packed = cycled(upload_packed(pointers), s.experts);
  order_experts_for_tensor_cores(packed);

  const std::vector<int32_t> counts = route(rng, tokens, s.experts, hot);
  std::vector<int32_t> offsets(size_t(s.experts + 1), 0);
  for (int64_t e = 0; e < s.experts; ++e) {
    offsets[size_t(e + 1)] = offsets[size_t(e)] + counts[size_t(e)];
  }
  const int64_t m = offsets.back();
  const std::vector<float> pool = test::random_floats(rng, size_t(kInputPool * s.cols));
  std::vector<float> x(size_t(m * s.cols));
  for (int64_t r = 0; r < m; ++r) {
    std::copy_n(pool.begin() + (r % kInputPool) * s.cols, s.cols, x.begin() + r * s.cols);
  }
  const DeviceBuffer<float> dx(x);
  const DeviceBuffer<int32_t> doffsets(offsets);
  auto codes = test::poisoned<uint8_t>(size_t(m * s.cols));
  auto scales = test::poisoned<float>(size_t(m * s.cols / 128));
  auto y = test::poisoned<float>(size_t(m * s.rows));
  const int64_t narrow = expert_narrow_tiles_capacity(s.experts, m);
  const int64_t wide = expert_wide_tiles_capacity(m);
  auto lists = test::poisoned<int32_t>(size_t(narrow + wide + 2));
  const ExpertTiles tiles{lists.data(), lists.data() + narrow, lists.data() + narrow + wide, narrow,
                          wide};
  quantize_activations_fp8(dx.data(), m, s.cols, codes.data(), scales.data(), nullptr);
  plan_expert_tiles(doffsets.data(), s.experts, tiles, nullptr);
  expert_scaled_gemm(codes.data(), scales.data(), doffsets.data(), tokens, tiles, packed.view(),
                     {y.data(), nullptr}, nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> got = y.download();

  std::vector<int64_t> used;
  for (int64_t e = 0; e < s.experts; ++e) {
    if (counts[size_t(e)] > 0) used.push_back(e);
  }
  const size_t stride = (used.size() + 15) / 16;
  std::vector<int64_t> sample;
  for (size_t i = 0; i < used.size(); i += stride) {
    const int64_t e = used[i];
    sample.push_back(offsets[size_t(e)]);
    if (counts[size_t(e)] > 1) sample.push_back(offsets[size_t(e + 1)] - 1);
  }
  std::vector<float> want, have;
  for (int64_t slot : sample) {
    const auto e = int64_t(std::upper_bound(offsets.begin(), offsets.end(), int32_t(slot)) -
                           offsets.begin() - 1);
    std::vector<float> row(size_t(s.rows));
    cpu::linear(x.data() + slot * s.cols, 1, weights[size_t(e % kDistinct)], Numerics::kOfficial,
                row.data());
    want.insert(want.end(), row.begin(), row.end());
    have.insert(have.end(), got.begin() + slot * s.rows, got.begin() + (slot + 1) * s.rows);
  }
  const double bound =
      tokens >= expert_wgmma_min_tokens(s.experts) ? kFp8MmaChainBound : kFp8MmaBlockBound;
  EXPECT_LE(test::relative_error(have, want), bound) << sample.size() << " rows checked";
}

TEST(ExpertGemmShapes, FlashExpertsFromOneTo8192Tokens) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (const Shape& shape : {Shape{256, 2 * 2048, 4096}, Shape{256, 4096, 2048}}) {
    for (int64_t tokens : {1, 16, 8192}) check_shape(rng, shape, tokens, false);
    check_shape(rng, shape, 512, true);
  }
}

TEST(ExpertGemmShapes, ProExpertsFromOneTo8192Tokens) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (const Shape& shape : {Shape{384, 2 * 3072, 7168}, Shape{384, 7168, 3072}}) {
    for (int64_t tokens : {1, 16, 8192}) check_shape(rng, shape, tokens, false);
    check_shape(rng, shape, 512, true);
  }
}

}  // namespace
}  // namespace dsv4::cuda
