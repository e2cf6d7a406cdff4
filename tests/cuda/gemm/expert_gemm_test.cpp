// The routed-expert GEMM (expert_scaled_gemm) against cpu::linear run expert by expert on that
// expert's rows: fresh random FP4 / FP8 experts and skewed row counts (empty experts, one hot
// expert; counts that reach every token-tile width, 1 to 16, in both launches), outputs
// poisoned. MXFP4 experts run on the tensor cores on sm_90 (fp4_expert_stream_wgmma.cu,
// fp4_expert_wgmma.cu, once order_experts_for_tensor_cores has ordered them) and on the CUDA-core
// kernel other GPUs run (in the natural order); both are checked. Bound as
// for the single linear, 1e-5 relative, except on the FP8 tensor cores (kFp8MmaBlockBound,
// kFp8MmaChainBound at prefill sizes); rows the offsets give to no expert stay untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
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

constexpr double kBound = 1e-5;
using test::kFp8MmaBlockBound;
using test::kFp8MmaChainBound;

struct ExpertRun {
  float scale_factor = 1.0f;  // FP4: not 1 gives float (not ue8m0) scales
  bool tensor_cores = true;
  // FP4, not 0: the scale of every expert's row 1, block 0 (a spread of block exponents the
  // scale-folded prefill loop does not take).
  float quiet_block_scale = 0.0f;
};

// expert_scaled_gemm on x (rows of weights[0].cols inputs, counts[e] of them for expert e);
// y has one row more than the tokens, poisoned (the caller checks it stays so).
std::vector<float> run_experts(const std::vector<LinearWeight>& weights,
                               const std::vector<float>& x, const std::vector<int32_t>& counts,
                               bool tensor_cores) {
  const auto n_experts = int64_t(counts.size());
  const int64_t rows = weights[0].rows, cols = weights[0].cols;
  std::vector<const LinearWeight*> pointers;
  for (const LinearWeight& w : weights) pointers.push_back(&w);
  std::vector<int32_t> offsets(size_t(n_experts + 1), 0);
  int32_t max_rows = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    offsets[size_t(e + 1)] = offsets[size_t(e)] + counts[size_t(e)];
    max_rows = std::max(max_rows, counts[size_t(e)]);
  }
  const int64_t m = offsets.back();
  DevicePackedLinears packed = upload_packed(pointers);
  if (tensor_cores) order_experts_for_tensor_cores(packed);
  const DeviceBuffer<float> dx(x);
  const DeviceBuffer<int32_t> doffsets(offsets);
  auto codes = test::poisoned<uint8_t>(size_t(m * cols));
  auto scales = test::poisoned<float>(size_t(m * cols / 128));
  auto y = test::poisoned<float>(size_t((m + 1) * rows));
  // The tile lists at the capacities a step of m slots gets, poisoned first.
  const int64_t narrow = expert_narrow_tiles_capacity(n_experts, m);
  const int64_t wide = expert_wide_tiles_capacity(m);
  auto lists = test::poisoned<int32_t>(size_t(narrow + wide + 2));
  const ExpertTiles tiles{lists.data(), lists.data() + narrow, lists.data() + narrow + wide, narrow,
                          wide};
  quantize_activations_fp8(dx.data(), m, cols, codes.data(), scales.data(), nullptr);
  plan_expert_tiles(doffsets.data(), n_experts, tiles, nullptr);
  expert_scaled_gemm(codes.data(), scales.data(), doffsets.data(), max_rows, tiles, packed.view(),
                     {y.data(), nullptr}, nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return y.download();
}

std::vector<LinearWeight> random_experts(std::mt19937_64& rng, WeightFormat format, int64_t n,
                                         int64_t rows, int64_t cols, const ExpertRun& run) {
  std::vector<LinearWeight> weights;
  for (int64_t e = 0; e < n; ++e) {
    weights.push_back(format == WeightFormat::kFp4
                          ? test::fp4_weight(rng, rows, cols, run.scale_factor)
                      : format == WeightFormat::kNvFp4 ? test::nvfp4_weight(rng, rows, cols)
                                                       : test::fp8_weight(rng, rows, cols));
  }
  if (run.quiet_block_scale != 0.0f) {
    for (LinearWeight& w : weights) w.scales[size_t(cols / 32)] = run.quiet_block_scale;
  }
  return weights;
}

void check_experts(std::mt19937_64& rng, WeightFormat format, int64_t rows, int64_t cols,
                   const std::vector<int32_t>& counts, ExpertRun run = {}, double bound = kBound) {
  const auto n_experts = int64_t(counts.size());
  const std::vector<LinearWeight> weights = random_experts(rng, format, n_experts, rows, cols, run);
  std::vector<int32_t> offsets(size_t(n_experts + 1), 0);
  for (int64_t e = 0; e < n_experts; ++e) {
    offsets[size_t(e + 1)] = offsets[size_t(e)] + counts[size_t(e)];
  }
  const int64_t m = offsets.back();
  const std::vector<float> x = test::random_floats(rng, size_t(m * cols));
  const std::vector<float> got = run_experts(weights, x, counts, run.tensor_cores);

  for (int64_t e = 0; e < n_experts; ++e) {
    const int64_t n = counts[size_t(e)];
    if (n == 0) continue;
    std::vector<float> want(size_t(n * rows));
    cpu::linear(x.data() + offsets[size_t(e)] * cols, n, weights[size_t(e)], Numerics::kOfficial,
                want.data());
    const std::vector<float> part(got.begin() + offsets[size_t(e)] * rows,
                                  got.begin() + (offsets[size_t(e)] + n) * rows);
    EXPECT_LE(test::relative_error(part, want), bound)
        << "expert " << e << " of " << n_experts << ", " << n << " rows";
  }
  size_t overwritten = 0;
  for (auto it = got.begin() + m * rows; it != got.end(); ++it) {
    uint32_t bits = 0;
    std::memcpy(&bits, &*it, sizeof(bits));
    overwritten += bits != 0xffffffffu;
  }
  EXPECT_EQ(overwritten, 0u) << "values written past the last expert's rows";
}

TEST(ExpertGemm, Fp4ExpertsWithUnevenRowCountsMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp4, 256, 512, {3, 0, 1, 17, 0, 5, 2, 9}, {},
                kFp8MmaBlockBound);
  check_experts(rng, WeightFormat::kFp4, 512, 256, {1, 1, 1, 1}, {},  // decode: one row each
                kFp8MmaBlockBound);
}

// Decode steps reproduce a prefill only if a token's sums do not depend on how many tokens share
// its expert: the same token alone, in a narrow tile, and at two places of wide tiles (5-16).
TEST(ExpertGemm, Fp4TokenSumsDoNotDependOnTheTokensSharingTheExpert) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  constexpr int64_t kRows = 256, kCols = 512;
  const std::vector<LinearWeight> weights =
      random_experts(rng, WeightFormat::kFp4, 2, kRows, kCols, {});
  const std::vector<float> tokens = test::random_floats(rng, size_t(16 * kCols));
  const std::vector<float> token(tokens.begin(), tokens.begin() + kCols);
  const std::vector<float> alone = run_experts(weights, token, {0, 1}, true);
  for (const int32_t count : {3, 7, 16}) {
    std::vector<float> x(tokens.begin(), tokens.begin() + count * kCols);
    const int32_t last = count - 1;
    std::copy(token.begin(), token.end(), x.begin() + last * kCols);
    const std::vector<float> shared = run_experts(weights, x, {0, count}, true);
    for (const int32_t at : {0, last}) {
      EXPECT_EQ(std::memcmp(shared.data() + at * kRows, alone.data(), kRows * sizeof(float)), 0)
          << "token " << at << " of " << count;
    }
  }
}

// From 8 tokens a step the decode kernel runs on whole bands (a warpgroup streams all of a
// band's inputs, banking the first half's sums): the same sums as the split CTAs of a smaller
// step, added in the same order. An expert's tile alone (fewer than 8 tokens: split) against the
// same tile beside an expert of 64 tokens (whole): a narrow tile (1 token) and a wide one (6).
TEST(ExpertGemm, Fp4TokenSumsDoNotDependOnHowManyTokensTheStepHas) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  constexpr int64_t kRows = 4096, kCols = 1024;  // 64 bands; 8 stages, banked after 4
  constexpr int32_t kBusy = 64;
  static_assert(kExpertWholeBandMinTokens > 6 && kExpertWholeBandMinTokens <= kBusy,
                "the tiles alone must run split and beside the busy expert whole");
  const std::vector<LinearWeight> weights =
      random_experts(rng, WeightFormat::kFp4, 2, kRows, kCols, {});
  for (const int32_t tile : {1, 6}) {
    const std::vector<float> x = test::random_floats(rng, size_t((kBusy + tile) * kCols));
    const std::vector<float> mine(x.end() - tile * kCols, x.end());
    const std::vector<float> alone = run_experts(weights, mine, {0, tile}, true);
    const std::vector<float> busy = run_experts(weights, x, {kBusy, tile}, true);
    EXPECT_EQ(std::memcmp(busy.data() + kBusy * kRows, alone.data(),
                          size_t(tile * kRows) * sizeof(float)),
              0)
        << tile << " tokens a tile";
  }
}

TEST(ExpertGemm, Fp4ExpertsOnCudaCoresMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ExpertRun cuda_cores{1.0f, false};
  check_experts(rng, WeightFormat::kFp4, 256, 512, {3, 0, 1, 17, 0, 5, 2, 9}, cuda_cores);
  check_experts(rng, WeightFormat::kFp4, 512, 256, {1, 1, 1, 1}, cuda_cores);
}

TEST(ExpertGemm, Fp4ExpertsWithFloatScalesMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp4, 256, 512, {3, 0, 1, 17, 0, 5, 2, 9}, {0.75f},
                kFp8MmaBlockBound);
}

// Long rows cycle the tensor-core kernel's stage ring many times; a row count that is not a
// multiple of its 64-row MMA tiles leaves a partial tile.
TEST(ExpertGemm, Fp4ExpertsWithLongRowsAndAPartialRowTileMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp4, 200, 4096, {1, 16, 0, 9, 3, 40}, {}, kFp8MmaBlockBound);
}

// From expert_wgmma_min_tokens tokens a step the FP4 experts run on FP8 warpgroup MMAs, whose
// accumulation inside an MMA chain is not exact fp32 (Hopper keeps about 14 bits when adding
// products of different magnitude): bound kFp8MmaChainBound.
// Token tiles of 128 with a partial last one, an expert with one token, a partial row tile.
TEST(ExpertGemm, Fp4ExpertsAtPrefillSizesMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp4, 200, 512, {2100, 0, 1, 129, 37}, {}, kFp8MmaChainBound);
}

// Rows whose block scales are not all powers of two within 2^11 of each other take the exact
// per-block loop: scales that are not powers of two (float scales); a row with a block 2^-30
// (ue8m0 scales; the rows of the other CTAs fold theirs); a row with a block 2^-127 (which
// makes the encoder keep float scales; the rows of the other CTAs fold theirs).
TEST(ExpertGemm, Fp4ExpertsAtPrefillSizesWithUnfoldableScalesMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const std::vector<int32_t> counts{2050, 5, 140};
  check_experts(rng, WeightFormat::kFp4, 256, 384, counts, {0.75f}, kFp8MmaChainBound);
  for (const float quiet : {0x1p-30f, 0x1p-127f}) {
    ExpertRun run;
    run.quiet_block_scale = quiet;
    check_experts(rng, WeightFormat::kFp4, 256, 384, counts, run, kFp8MmaChainBound);
  }
}

TEST(ExpertGemm, NvFp4ExpertsEachWithItsGlobalScaleMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kNvFp4, 256, 512, {3, 0, 1, 17, 0, 5, 2, 9});
}

TEST(ExpertGemm, OneHotExpertTakesEveryRow) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp4, 256, 256, {0, 0, 70, 0}, {}, kFp8MmaBlockBound);
}

TEST(ExpertGemm, Fp8ExpertsMatchCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_experts(rng, WeightFormat::kFp8, 256, 384, {4, 0, 2});
  check_experts(rng, WeightFormat::kFp8, 256, 384, {12, 1, 33, 0, 7});  // wide tiles too
}

}  // namespace
}  // namespace dsv4::cuda
