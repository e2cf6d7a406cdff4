// order_experts_for_tensor_cores: on a device with the sm_90 expert kernels, each 16-byte run of
// MXFP4 codes becomes words (groups 0, 4), (1, 5), (2, 6), (3, 7) of its 2-byte groups, so that
// word q holds codes 4q .. 4q + 3 and 16 + 4q .. +3, magnitudes in place and the signs of the
// first four at bits 7, 15, 23, 31, of the last four at 3, 11, 19, 27; the rows' codes and
// scales are stored by bands of 64 rows (fewer in the last), each band 128-input stage by stage;
// each row gets its scale-folded encoding's exponent (or 0). Elsewhere the codes stay as they are.
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

  void upload(int64_t count, int64_t rows, int64_t cols, float scale_factor = 1.0f) {
    std::vector<const LinearWeight*> pointers;
    for (int64_t e = 0; e < count; ++e) {
      weights.push_back(test::fp4_weight(rng, rows, cols, scale_factor));
    }
    for (const LinearWeight& w : weights) pointers.push_back(&w);
    experts = upload_packed(pointers);
    natural = experts.storage.values.download();
    natural_scales = experts.storage.scales.download();
  }

  const uint64_t seed = test::fresh_seed();
  testing::ScopedTrace trace{__FILE__, __LINE__, seed};
  std::mt19937_64 rng{seed};
  std::vector<LinearWeight> weights;
  DevicePackedLinears experts;
  std::vector<uint8_t> natural;         // the codes as uploaded
  std::vector<uint8_t> natural_scales;  // the scales as uploaded
};

// Where row r's piece (`piece` bytes a row and 128-input stage) of stage c starts in a weight of
// `rows` rows and `stages` stages: its band of 64 rows starts where the band's first row did;
// inside it, stage after stage, each holding the band's rows in order.
size_t band_stage_place(int64_t rows, int64_t stages, int64_t r, int64_t c, int64_t piece) {
  const int64_t first = r / 64 * 64, band_rows = std::min<int64_t>(64, rows - first);
  return size_t(first * stages * piece + c * band_rows * piece + (r - first) * piece);
}

// The scales of every (expert, row, stage) of `experts` (ordered) against `natural` (as uploaded),
// `piece` bytes each.
void expect_scales_by_band_stage(const std::vector<uint8_t>& natural,
                                 const DevicePackedLinears& experts, int64_t piece) {
  const std::vector<uint8_t> got = experts.storage.scales.download();
  ASSERT_EQ(got.size(), natural.size());
  const int64_t rows = experts.storage.rows, stages = experts.storage.cols / 128;
  for (int64_t e = 0; e < experts.count; ++e) {
    const size_t base = size_t(e * experts.scale_bytes);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < stages; ++c) {
        const size_t from = base + size_t((r * stages + c) * piece);
        const size_t to = base + band_stage_place(rows, stages, r, c, piece);
        for (int64_t b = 0; b < piece; ++b) {
          ASSERT_EQ(got[to + size_t(b)], natural[from + size_t(b)])
              << "expert " << e << ", row " << r << ", stage " << c << ", byte " << b;
        }
      }
    }
  }
}

TEST_F(ExpertWeightOrder, PutsEachFragmentsCodesInOneWordAndEachBandsStageTogether) {
  upload(3, 80, 256);  // bands of 64 and 16 rows, two stages
  order_experts_for_tensor_cores(experts);
  const std::vector<uint8_t> got = experts.storage.values.download();
  ASSERT_EQ(got.size(), natural.size());
  if (!sm90_kernels_available()) {
    EXPECT_EQ(experts.storage.fp4_order, Fp4Order::kNatural);
    EXPECT_EQ(got, natural);
    return;
  }
  EXPECT_EQ(experts.storage.fp4_order, Fp4Order::kMmaTiles);
  const int64_t rows = 80, stages = 2;
  for (int64_t e = 0; e < 3; ++e) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < stages; ++c) {
        const size_t piece = size_t(e * experts.value_bytes) + size_t((r * stages + c) * 64);
        const size_t placed =
            size_t(e * experts.value_bytes) + band_stage_place(rows, stages, r, c, 64);
        for (size_t run = 0; run < 4; ++run) {
          for (size_t q = 0; q < 4; ++q) {
            const uint8_t* bytes = got.data() + placed + 16 * run + 4 * q;
            const uint32_t word = uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 |
                                  uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24;
            for (size_t i = 0; i < 8; ++i) {
              const size_t k = i < 4 ? 4 * q + i : 16 + 4 * q + (i - 4);  // the code's input
              const uint32_t code = (natural[piece + 16 * run + k / 2] >> (4 * (k % 2))) & 0xfu;
              const size_t sign_bit = i < 4 ? 8 * i + 7 : 8 * (i - 4) + 3;
              ASSERT_EQ((word >> (4 * i)) & 7u, code & 7u)
                  << "expert " << e << ", row " << r << ", stage " << c << ", word " << q;
              ASSERT_EQ((word >> sign_bit) & 1u, code >> 3)
                  << "expert " << e << ", row " << r << ", stage " << c << ", word " << q;
            }
          }
        }
      }
    }
  }
}

TEST_F(ExpertWeightOrder, PutsEachBandsStageOfUe8m0ScalesTogether) {
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 expert kernels on this device";
  upload(2, 136, 384);  // bands of 64, 64 and 8 rows, three stages
  ASSERT_EQ(experts.storage.scale_storage, ScaleStorage::kUe8m0);
  order_experts_for_tensor_cores(experts);
  expect_scales_by_band_stage(natural_scales, experts, 4);
}

TEST_F(ExpertWeightOrder, PutsEachBandsStageOfFloatScalesTogether) {
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 expert kernels on this device";
  upload(2, 72, 256, 0.75f);  // scales that are not powers of two stay floats
  ASSERT_EQ(experts.storage.scale_storage, ScaleStorage::kF32);
  order_experts_for_tensor_cores(experts);
  expect_scales_by_band_stage(natural_scales, experts, 16);
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
