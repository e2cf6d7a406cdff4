// The device numeric primitives (cuda/kernels/common/numerics.cuh) and the gemm kernels'
// packed decoders against their host twins in src/core: exhaustive over codes, and over
// ties, neighbours and random values for the encoders.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gemm/gemm_test_util.h"
#include "gemm/numerics_kernels.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

bool same_value(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || test::same_bits(a, b);
}

std::vector<uint8_t> all_codes(int n) {
  std::vector<uint8_t> codes(size_t(n), 0);
  for (int i = 0; i < n; ++i) codes[size_t(i)] = uint8_t(i);
  return codes;
}

TEST(DeviceNumerics, DecodersMatchTheHostOnEveryCode) {
  DSV4_REQUIRE_GPU();
  const std::vector<uint8_t> codes = all_codes(256);
  const std::vector<float> e4m3 = test::device_e4m3_to_float(codes);
  const std::vector<float> ue8m0 = test::device_ue8m0_to_float(codes);
  for (int c = 0; c < 256; ++c) {
    EXPECT_TRUE(same_value(e4m3[size_t(c)], e4m3_to_float(uint8_t(c)))) << "e4m3 code " << c;
    EXPECT_TRUE(same_value(ue8m0[size_t(c)], ue8m0_to_float(uint8_t(c)))) << "ue8m0 code " << c;
  }
  const std::vector<float> e2m1 = test::device_e2m1_to_float(all_codes(16));
  for (int c = 0; c < 16; ++c) {
    EXPECT_TRUE(test::same_bits(e2m1[size_t(c)], e2m1_to_float(uint8_t(c)))) << "e2m1 code " << c;
  }
}

TEST(DeviceNumerics, E4m3EncoderMatchesTheHostOnTiesNeighboursAndRandomValues) {
  DSV4_REQUIRE_GPU();
  std::vector<float> values = {0.0f,
                               -0.0f,
                               448.0f,
                               -448.0f,
                               449.0f,
                               464.0f,
                               1e30f,
                               -1e30f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(),
                               1e-45f,
                               0x1p-10f,
                               0x1p-6f,
                               0x1p-7f};
  // Every representable value, every midpoint between neighbours (ties to even), and the
  // floats just beside them.
  for (int c = 0; c < 0x7e; ++c) {
    const float a = e4m3_to_float(uint8_t(c)), b = e4m3_to_float(uint8_t(c + 1));
    const float mid = 0.5f * (a + b);
    for (const float v : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      values.push_back(v);
      values.push_back(-v);
    }
  }
  std::mt19937_64 rng(test::fresh_seed());
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-24, 10);
  for (int i = 0; i < 200000; ++i)
    values.push_back(std::ldexp(mantissa(rng), exponent(rng)) * (i % 2 ? -1.0f : 1.0f));
  const std::vector<uint8_t> got = test::device_float_to_e4m3(values);
  size_t bad = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (got[i] != float_to_e4m3(values[i])) {
      if (++bad < 10)
        ADD_FAILURE() << "e4m3 of " << values[i] << ": " << int(got[i]) << " vs "
                      << int(float_to_e4m3(values[i]));
    }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(DeviceNumerics, BlockScalesMatchTheHost) {
  DSV4_REQUIRE_GPU();
  std::vector<float> amax = {0.0f, 1e-4f, 0x1p-126f, 6.0f * 0x1p-126f, 448.0f, 6.0f, 1.0f, 3.5f};
  std::mt19937_64 rng(test::fresh_seed());
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-126, 100);
  for (int i = 0; i < 100000; ++i) {
    amax.push_back(i % 4 ? std::ldexp(mantissa(rng), exponent(rng))
                         : std::ldexp(1.0f, exponent(rng)));
  }
  const std::vector<float> fp8 = test::device_fp8_block_scale(amax);
  const std::vector<float> fp4 = test::device_fp4_block_scale(amax);
  size_t bad = 0;
  for (size_t i = 0; i < amax.size(); ++i) {
    bad += !test::same_bits(fp8[i], fp8_block_scale(amax[i]));
    bad += !test::same_bits(fp4[i], fp4_block_scale(amax[i]));
  }
  EXPECT_EQ(bad, 0u);
}

TEST(DeviceNumerics, PackedGemmDecodersGiveExactValues) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed());
  std::vector<uint32_t> words(4096);
  for (uint32_t& w : words) w = uint32_t(rng());
  for (uint32_t i = 0; i < 64; ++i) words[i] = i * 0x04040404u + 0x00010203u;  // every byte
  const std::vector<float> e4m3 = test::device_e4m3x4_decode(words);
  const std::vector<float> e2m1 = test::device_e2m1x8_decode(words);
  size_t bad = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    for (int j = 0; j < 4; ++j) {
      bad += !same_value(e4m3[4 * i + size_t(j)], e4m3_to_float(uint8_t(words[i] >> (8 * j))));
    }
    for (int j = 0; j < 8; ++j) {
      bad += !test::same_bits(e2m1[8 * i + size_t(j)],
                              e2m1_to_float(uint8_t((words[i] >> (4 * j)) & 0xfu)));
    }
  }
  EXPECT_EQ(bad, 0u);
}

}  // namespace
}  // namespace dsv4::cuda
