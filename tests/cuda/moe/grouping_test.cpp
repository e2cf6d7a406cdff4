// Expert grouping (counts, offsets, order, position) and the quantized row gather, against a host
// stable counting sort, which is the CPU's member order (experts ascending, then slots).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "cuda/kernels/moe/grouping.h"
#include "gemm/expert_tiles_check.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

// Random experts per token: distinct within a token unless `repeats`.
std::vector<int32_t> random_experts(std::mt19937_64& rng, int64_t tokens, int64_t k,
                                    int64_t n_experts, bool repeats) {
  std::vector<int32_t> out;
  std::vector<int32_t> all(static_cast<size_t>(n_experts));
  for (int64_t t = 0; t < tokens; ++t) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < k; ++j) {
      out.push_back(repeats ? int32_t(rng() % uint64_t(n_experts)) : all[size_t(j)]);
    }
  }
  return out;
}

void check_grouping(int64_t tokens, int64_t k, int64_t n_experts, int64_t dim, bool repeats) {
  std::mt19937_64 rng(test::fresh_seed("grouping"));
  const std::vector<int32_t> experts = random_experts(rng, tokens, k, n_experts, repeats);
  const auto slots = size_t(tokens * k);
  // Expected: a stable counting sort of the slots by expert.
  std::vector<int32_t> counts(static_cast<size_t>(n_experts), 0), offsets(size_t(n_experts + 1), 0);
  for (const int32_t e : experts) ++counts[size_t(e)];
  for (int64_t e = 0; e < n_experts; ++e)
    offsets[size_t(e + 1)] = offsets[size_t(e)] + counts[size_t(e)];
  std::vector<int32_t> order, position(slots);
  for (int64_t e = 0; e < n_experts; ++e) {
    for (size_t s = 0; s < slots; ++s) {
      if (experts[s] != e) continue;
      position[s] = int32_t(order.size());
      order.push_back(int32_t(s));
    }
  }
  DeviceBuffer<int32_t> d_experts(experts), d_counts(static_cast<size_t>(n_experts)),
      d_offsets(size_t(n_experts + 1)), d_order(slots), d_position(slots);
  test::poison(d_counts);
  test::poison(d_offsets);
  test::poison(d_order);
  test::poison(d_position);
  const auto launch = [&] {
    moe_group(d_experts.data(), tokens, k, n_experts, d_counts.data(), d_offsets.data(),
              d_order.data(), d_position.data(), nullptr, nullptr);
  };
  launch();
  EXPECT_EQ(d_counts.download(), counts);
  EXPECT_EQ(d_offsets.download(), offsets);
  EXPECT_EQ(d_order.download(), order);
  EXPECT_EQ(d_position.download(), position);
  test::report_time(fmt::format("moe_group T={} k={} E={}", tokens, k, n_experts).c_str(),
                    test::median_us(launch));

  // The quantized gather, over rows of dim rounded up to whole 128-input scale blocks.
  const int64_t width = (dim + 127) / 128 * 128;
  std::vector<uint8_t> codes(size_t(tokens * width));
  std::vector<float> scales(codes.size() / 128);
  for (uint8_t& c : codes) c = uint8_t(rng());
  for (float& v : scales) v = std::ldexp(1.0f, int(rng() % 40) - 20);
  std::vector<uint8_t> gathered_codes(slots * size_t(width));
  std::vector<float> gathered_scales(gathered_codes.size() / 128);
  for (size_t p = 0; p < slots; ++p) {
    const auto token = size_t(order[p] / k);
    std::copy_n(codes.begin() + std::ptrdiff_t(token * size_t(width)), width,
                gathered_codes.begin() + std::ptrdiff_t(p * size_t(width)));
    std::copy_n(scales.begin() + std::ptrdiff_t(token * size_t(width / 128)), width / 128,
                gathered_scales.begin() + std::ptrdiff_t(p * size_t(width / 128)));
  }
  DeviceBuffer<uint8_t> d_codes(codes), d_gathered_codes(gathered_codes.size());
  DeviceBuffer<float> d_scales(scales), d_gathered_scales(gathered_scales.size());
  test::poison(d_gathered_codes);
  test::poison(d_gathered_scales);
  moe_gather_quantized(d_codes.data(), d_scales.data(), d_order.data(), tokens, k, width,
                       d_gathered_codes.data(), d_gathered_scales.data(), nullptr);
  EXPECT_EQ(d_gathered_codes.download(), gathered_codes);
  EXPECT_EQ(d_gathered_scales.download(), gathered_scales);
}

TEST(Grouping, MatchesAStableCountingSortAtFlashShapes) {
  DSV4_REQUIRE_GPU();
  check_grouping(1, 6, 256, 4096, false);    // decode
  check_grouping(64, 6, 256, 4096, false);   // batched decode
  check_grouping(4096, 6, 256, 256, false);  // prefill chunk (narrow rows keep the gather small)
  check_grouping(100, 6, 384, 7168, false);  // Pro
}

TEST(Grouping, MatchesAtOddShapesAndRepeatedExperts) {
  DSV4_REQUIRE_GPU();
  check_grouping(7, 3, 5, 100, false);
  check_grouping(13, 4, 3, 36, true);  // experts repeat within a token; some may be empty
  check_grouping(300, 2, 1000, 8, false);
}

// Up to kGroupInOneLaunchSlots slots the counting launch places the slots itself.
TEST(Grouping, MatchesAtTheOneLaunchLimitAndJustPastIt) {
  DSV4_REQUIRE_GPU();
  check_grouping(kGroupInOneLaunchSlots / 4, 4, 64, 128, true);
  check_grouping(kGroupInOneLaunchSlots / 4 + 1, 4, 64, 128, true);
}

// moe_group's counting launch lists the expert GEMMs' tiles as plan_expert_tiles does
// (expert_tiles_check.h), from routed experts (one per token here, in shuffled order).
TEST(Grouping, ListsTheExpertTilesWhileCounting) {
  DSV4_REQUIRE_GPU();
  test::check_listed_tiles([](const std::vector<int32_t>& counts, const ExpertTiles& tiles) {
    std::vector<int32_t> experts;
    for (size_t e = 0; e < counts.size(); ++e)
      experts.insert(experts.end(), size_t(counts[e]), int32_t(e));
    std::mt19937_64 rng(test::fresh_seed("expert tiles"));
    std::shuffle(experts.begin(), experts.end(), rng);
    const auto slots = int64_t(experts.size()), n_experts = int64_t(counts.size());
    const DeviceBuffer<int32_t> d_experts(experts);
    DeviceBuffer<int32_t> d_counts(static_cast<size_t>(n_experts)),
        d_offsets(static_cast<size_t>(n_experts + 1)), d_order(static_cast<size_t>(slots)),
        d_position(static_cast<size_t>(slots));
    moe_group(d_experts.data(), slots, 1, n_experts, d_counts.data(), d_offsets.data(),
              d_order.data(), d_position.data(), &tiles, nullptr);
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  });
}

}  // namespace
}  // namespace dsv4::cuda
