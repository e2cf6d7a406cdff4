// The forward pass's element-wise glue (cuda/model/glue.h) against the CPU's loops it twins.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "attention/test_util.h"
#include "core/formats.h"
#include "core/hadamard.h"
#include "core/quantize.h"
#include "cpu/activations.h"
#include "cuda/model/glue.h"
#include "cuda/runtime/check.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

// cpu::AttentionLayer::project's indexer query tail in official numerics: Walsh-Hadamard ·
// dim^-0.5, bf16, FP4 round trip; every bit the same, at the model's 128 dims and the ends of
// the supported range.
TEST(IndexerQueryRotate, MatchesTheCpuBitForBit) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("IndexerQueryRotate");
  for (const int64_t dim : {32, 128, 1024}) {
    const int64_t rows = 67;  // not a multiple of the kernel's rows per block
    std::vector<float> want = test::random_bf16_values(rng, size_t(rows * dim), 3.0f);
    DeviceBuffer<uint16_t> x(test::to_bf16_bits(want));
    indexer_query_rotate(x.data(), rows, dim, nullptr);
    const std::vector<uint16_t> got = x.download();
    for (int64_t r = 0; r < rows; ++r) {
      float* row = want.data() + r * dim;
      hadamard_transform(row, size_t(dim));
      cpu::round_activations(row, size_t(dim), Numerics::kOfficial);
      fp4_round_trip(row, size_t(dim));
    }
    size_t differing = 0;
    for (size_t i = 0; i < got.size(); ++i) differing += got[i] != float_to_bf16(want[i]);
    std::printf("[IndexerQueryRotate] dim %lld: %zu of %zu values differ\n",
                static_cast<long long>(dim), differing, got.size());
    EXPECT_EQ(differing, 0u) << "dim " << dim;
  }
}

}  // namespace
}  // namespace dsv4::cuda
