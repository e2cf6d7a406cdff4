// The expert GEMMs' tile lists written out by hand for a set of per-expert token counts: every
// expert's tokens in tiles of 16, the last one (1-15 tokens) narrow when it has at most 4,
// listed in expert order. Checks what a launch (plan_expert_tiles, moe_group) lists into
// poisoned lists.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <numeric>
#include <vector>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/runtime/check.h"
#include "gemm/gemm_test_util.h"

namespace dsv4::cuda::test {

// Tokens per expert: none, 1, 4 (narrow), 5 (wide), 16 (one full tile), 17 (full + narrow), 36
// (16 + 16 + 4: two full, then narrow), 21 (16 + 5: both wide); `list` fills the lists from them
// and returns once its launches have finished.
inline void check_listed_tiles(
    const std::function<void(const std::vector<int32_t>& counts, const ExpertTiles&)>& list) {
  const std::vector<int32_t> counts{0, 1, 4, 5, 16, 17, 36, 21};
  const int64_t experts = int64_t(counts.size());
  const int64_t slots = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  const auto tile = [](int32_t e, int32_t t) { return e * 65536 + t; };
  const std::vector<int32_t> want_narrow{tile(1, 0), tile(2, 0), tile(5, 1), tile(6, 2)};
  const std::vector<int32_t> want_wide{tile(3, 0), tile(4, 0), tile(5, 0), tile(6, 0),
                                       tile(6, 1), tile(7, 0), tile(7, 1)};

  const int64_t narrow = expert_narrow_tiles_capacity(experts, slots);
  const int64_t wide = expert_wide_tiles_capacity(slots);
  auto lists = test::poisoned<int32_t>(size_t(narrow + wide + 2));
  const ExpertTiles tiles{lists.data(), lists.data() + narrow, lists.data() + narrow + wide, narrow,
                          wide};
  list(counts, tiles);
  const std::vector<int32_t> got = lists.download();
  ASSERT_EQ(got[size_t(narrow + wide)], int32_t(want_narrow.size()));
  ASSERT_EQ(got[size_t(narrow + wide + 1)], int32_t(want_wide.size()));
  EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + std::ptrdiff_t(want_narrow.size())),
            want_narrow);
  EXPECT_EQ(std::vector<int32_t>(got.begin() + narrow,
                                 got.begin() + narrow + std::ptrdiff_t(want_wide.size())),
            want_wide);
}

}  // namespace dsv4::cuda::test
