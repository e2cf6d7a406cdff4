// order_experts_for_tensor_cores: on a device with the sm_90 expert kernels, each 16-byte run of
// MXFP4 codes becomes words (groups 0, 4), (1, 5), (2, 6), (3, 7) of its 2-byte groups, so that
// word q holds codes 4q .. 4q + 3 and 16 + 4q .. +3, magnitudes in place and the signs of the
// first four at bits 7, 15, 23, 31, of the last four at 3, 11, 19, 27; each row gets its
// scale-folded encoding's exponent (or 0). Elsewhere the codes stay as they are.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/kernels/gemm/expert_weight_order.h"
#include "cuda/runtime/device.h"
#include "gemm/gemm_test_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

// Random MXFP4 experts uploaded in the natural order, from a fresh seed (traced).
class ExpertWeightOrder : public testing::Test {
 protected:
  void SetUp() override { DSV4_REQUIRE_GPU(); }

  void upload(int64_t count, int64_t rows, int64_t cols) {
    std::vector<const LinearWeight*> pointers;
    for (int64_t e = 0; e < count; ++e) weights.push_back(test::fp4_weight(rng, rows, cols));
    for (const LinearWeight& w : weights) pointers.push_back(&w);
    experts = upload_packed(pointers);
    natural = experts.storage.values.download();
  }

  const uint64_t seed = test::fresh_seed();
  testing::ScopedTrace trace{__FILE__, __LINE__, seed};
  std::mt19937_64 rng{seed};
  std::vector<LinearWeight> weights;
  DevicePackedLinears experts;
  std::vector<uint8_t> natural;  // the codes as uploaded
};

TEST_F(ExpertWeightOrder, PutsEachFragmentsCodesInOneWord) {
  upload(3, 16, 256);
  order_experts_for_tensor_cores(experts);
  const std::vector<uint8_t> got = experts.storage.values.download();
  ASSERT_EQ(got.size(), natural.size());
  if (!sm90_kernels_available()) {
    EXPECT_EQ(experts.storage.fp4_order, Fp4Order::kNatural);
    EXPECT_EQ(got, natural);
    return;
  }
  EXPECT_EQ(experts.storage.fp4_order, Fp4Order::kMmaFragments);
  for (size_t run = 0; run < natural.size() / 16; ++run) {
    for (size_t q = 0; q < 4; ++q) {
      const uint8_t* bytes = got.data() + 16 * run + 4 * q;
      const uint32_t word = uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 |
                            uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24;
      for (size_t i = 0; i < 8; ++i) {
        const size_t k = i < 4 ? 4 * q + i : 16 + 4 * q + (i - 4);  // the code's input in the run
        const uint32_t code = (natural[16 * run + k / 2] >> (4 * (k % 2))) & 0xfu;
        const size_t sign_bit = i < 4 ? 8 * i + 7 : 8 * (i - 4) + 3;
        ASSERT_EQ((word >> (4 * i)) & 7u, code & 7u) << "run " << run << ", word " << q;
        ASSERT_EQ((word >> sign_bit) & 1u, code >> 3) << "run " << run << ", word " << q;
      }
    }
  }
}

TEST_F(ExpertWeightOrder, OrdersOnlyOnce) {
  upload(2, 8, 128);
  order_experts_for_tensor_cores(experts);
  const std::vector<uint8_t> once = experts.storage.values.download();
  order_experts_for_tensor_cores(experts);
  EXPECT_EQ(experts.storage.values.download(), once);
}

// A row's byte: its largest scale exponent code (ue8m0: log2(scale) + 127) when every scale of
// the row is a power of two within 2^11 of the largest, else 0.
uint8_t expected_row_exponent(const LinearWeight& w, int64_t row) {
  const int64_t blocks = w.cols / 32;
  int low = 1 << 20, high = -(1 << 20);
  for (int64_t b = 0; b < blocks; ++b) {
    const float scale = w.scales[size_t(row * blocks + b)];
    int exponent = 0;
    if (std::frexp(scale, &exponent) != 0.5f) return 0;
    low = std::min(low, exponent - 1);
    high = std::max(high, exponent - 1);
  }
  const int code = high + 127;
  return high - low <= 11 && code >= 7 && code <= 254 ? uint8_t(code) : uint8_t(0);
}

TEST_F(ExpertWeightOrder, RecordsEachRowsFoldedEncodingExponent) {
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 expert kernels on this device";
  for (int e = 0; e < 3; ++e) weights.push_back(test::fp4_weight(rng, 8, 256));
  // Expert 1, row 2: one block 2^20 below the rest, which the folded encoding cannot take.
  weights[1].scales[2 * 8 + 5] = std::ldexp(1.0f, -40);
  std::vector<const LinearWeight*> pointers;
  for (const LinearWeight& w : weights) pointers.push_back(&w);
  experts = upload_packed(pointers);
  order_experts_for_tensor_cores(experts);
  const std::vector<uint8_t> got = experts.row_exponents.download();
  ASSERT_EQ(got.size(), size_t(3 * 8));
  for (int e = 0; e < 3; ++e) {
    for (int64_t r = 0; r < 8; ++r) {
      EXPECT_EQ(int(got[size_t(e * 8 + r)]), int(expected_row_exponent(weights[size_t(e)], r)))
          << "expert " << e << ", row " << r;
    }
  }
  EXPECT_EQ(got[size_t(8 + 2)], 0);
}

}  // namespace
}  // namespace dsv4::cuda
