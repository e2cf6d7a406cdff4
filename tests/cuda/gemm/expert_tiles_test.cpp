// plan_expert_tiles against the tiles written out by hand from the per-expert token counts
// (expert_tiles_check.h).
#include <gtest/gtest.h>

#include <vector>

#include "cuda/kernels/gemm/expert_tiles.h"
#include "gemm/expert_tiles_check.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

TEST(ExpertTiles, ListsEveryTileOnceNarrowUpToFourTokens) {
  DSV4_REQUIRE_GPU();
  test::check_listed_tiles([](const std::vector<int32_t>& counts, const ExpertTiles& tiles) {
    std::vector<int32_t> offsets{0};
    for (int32_t n : counts) offsets.push_back(offsets.back() + n);
    const DeviceBuffer<int32_t> d_offsets(offsets);
    plan_expert_tiles(d_offsets.data(), int64_t(counts.size()), tiles, nullptr);
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  });
}

}  // namespace
}  // namespace dsv4::cuda
