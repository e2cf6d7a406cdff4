// FP8 block quantization of activations: per block of 128 (GEMM inputs) or 64 (KV rows),
// s = fp8_block_scale(amax), q = e4m3(clamp(x / s, ±448)); the round trip stores e4m3(q) * s.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/formats.h"
#include "core/quantize.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::e4m3_reference_encode;
using test::e4m3_reference_value;

// The hand example: block A (amax 1) in [0, 64), block B (amax 3) in [64, 128).
std::vector<float> hand_example() {
  std::vector<float> x(128, 0.0f);
  x[0] = 1.0f;
  x[1] = -0.3f;
  x[2] = 0.01f;
  x[64] = 3.0f;
  x[65] = 0.1f;
  x[66] = -0.05f;
  return x;
}

// Random data whose blocks span very different magnitudes, plus an all-zero block and a block
// below the 1e-4 amax floor.
std::vector<float> varied_blocks(size_t n, size_t block, uint64_t seed) {
  test::Lcg rng(seed);
  std::vector<float> x(n);
  for (size_t b = 0; b * block < n; ++b) {
    const int exponent = int(rng.next() % 41) - 20;
    for (size_t i = 0; i < block; ++i) x[b * block + i] = std::ldexp(rng.uniform(), exponent);
  }
  for (size_t i = 0; i < block; ++i) x[i] = 0.0f;
  for (size_t i = 0; i < block; ++i) x[block + i] = 5e-5f * rng.uniform();
  return x;
}

float block_amax(const std::vector<float>& x, size_t begin, size_t count) {
  float amax = 0.0f;
  for (size_t i = begin; i < begin + count; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  return amax;
}

TEST(QuantizeFp8, HandExampleBlock64) {
  // Block A: amax 1 -> s = 2^-8, x/s = 256x. Block B: amax 3 -> s = 2^-7, x/s = 128x.
  //   1.0   -> 256   = 1.0   * 2^8 : exponent 15, mantissa 0 -> 0x78
  //  -0.3   -> -76.8 : grid step 8 in [64,128), nearest 80 = 1.25 * 2^6 -> 0x80|0x6a = 0xea
  //   0.01  -> 2.56  : grid step 0.25 in [2,4), nearest 2.5 = 1.25 * 2^1 -> 0x42
  //   3.0   -> 384   = 1.5   * 2^8 : exponent 15, mantissa 4 -> 0x7c
  //   0.1   -> 12.8  : grid step 1 in [8,16), nearest 13 = 1.625 * 2^3 -> 0x55
  //  -0.05  -> -6.4  : grid step 0.5 in [4,8), nearest 6.5 = 1.625 * 2^2 -> 0x80|0x4d = 0xcd
  const std::vector<float> x = hand_example();
  std::vector<uint8_t> codes(128, 0xaa);
  float scales[2] = {0, 0};
  quantize_fp8(x.data(), 128, 64, codes.data(), scales);
  EXPECT_EQ(scales[0], 0x1p-8f);
  EXPECT_EQ(scales[1], 0x1p-7f);
  EXPECT_EQ(codes[0], 0x78);
  EXPECT_EQ(codes[1], 0xea);
  EXPECT_EQ(codes[2], 0x42);
  EXPECT_EQ(codes[64], 0x7c);
  EXPECT_EQ(codes[65], 0x55);
  EXPECT_EQ(codes[66], 0xcd);
  for (size_t i : {3u, 63u, 67u, 127u}) EXPECT_EQ(codes[i], 0x00) << i;

  std::vector<float> y = x;
  fp8_round_trip(y.data(), 128, 64);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -0.3125f);      // -80 / 256
  EXPECT_EQ(y[2], 0.009765625f);  // 2.5 / 256
  EXPECT_EQ(y[64], 3.0f);
  EXPECT_EQ(y[65], 0.1015625f);    // 13 / 128
  EXPECT_EQ(y[66], -0.05078125f);  // -6.5 / 128
  EXPECT_EQ(y[3], 0.0f);
}

TEST(QuantizeFp8, HandExampleBlock128) {
  // One block, amax 3 -> s = 2^-7 for everything, so block A's values quantize differently:
  //   1.0  -> 128  = 1.0 * 2^7 : exponent 14, mantissa 0 -> 0x70
  //  -0.3  -> -38.4 : grid step 4 in [32,64), nearest 40 = 1.25 * 2^5 -> 0x80|0x62 = 0xe2
  //   0.01 -> 1.28  : grid step 0.125 in [1,2), nearest 1.25 -> 0x3a
  const std::vector<float> x = hand_example();
  std::vector<uint8_t> codes(128, 0xaa);
  float scale = 0;
  quantize_fp8(x.data(), 128, 128, codes.data(), &scale);
  EXPECT_EQ(scale, 0x1p-7f);
  EXPECT_EQ(codes[0], 0x70);
  EXPECT_EQ(codes[1], 0xe2);
  EXPECT_EQ(codes[2], 0x3a);
  EXPECT_EQ(codes[64], 0x7c);
  EXPECT_EQ(codes[65], 0x55);
  EXPECT_EQ(codes[66], 0xcd);

  std::vector<float> y = x;
  fp8_round_trip(y.data(), 128, 128);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -0.3125f);      // -40 / 128
  EXPECT_EQ(y[2], 0.009765625f);  // 1.25 / 128
  EXPECT_EQ(y[65], 0.1015625f);
}

class QuantizeFp8Blocks : public ::testing::TestWithParam<size_t> {};

TEST_P(QuantizeFp8Blocks, BlocksAreQuantizedIndependently) {
  const size_t block = GetParam(), n = 4 * block;
  std::vector<float> x = varied_blocks(n, block, 11);
  std::vector<uint8_t> codes(n), codes_changed(n);
  std::vector<float> scales(4), scales_changed(4);
  quantize_fp8(x.data(), n, block, codes.data(), scales.data());
  // Blow up block 2 only: blocks 0, 1, 3 must not change.
  for (size_t i = 2 * block; i < 3 * block; ++i) x[i] *= 1e6f;
  quantize_fp8(x.data(), n, block, codes_changed.data(), scales_changed.data());
  for (size_t b : {0u, 1u, 3u}) {
    EXPECT_EQ(scales_changed[b], scales[b]) << b;
    for (size_t i = b * block; i < (b + 1) * block; ++i) ASSERT_EQ(codes_changed[i], codes[i]) << i;
  }
  EXPECT_NE(scales_changed[2], scales[2]);
}

TEST_P(QuantizeFp8Blocks, CodesAndScalesMatchReference) {
  const size_t block = GetParam(), n = 16 * block;
  const std::vector<float> x = varied_blocks(n, block, 12);
  std::vector<uint8_t> codes(n);
  std::vector<float> scales(16);
  quantize_fp8(x.data(), n, block, codes.data(), scales.data());
  for (size_t b = 0; b < 16; ++b) {
    const float s = test::reference_fp8_scale(block_amax(x, b * block, block));
    ASSERT_EQ(scales[b], s) << b;
    for (size_t i = b * block; i < (b + 1) * block; ++i) {
      ASSERT_EQ(codes[i], e4m3_reference_encode(x[i] / s)) << i;
    }
  }
  EXPECT_EQ(scales[0], 0x1p-22f);  // the zero block takes the floor scale
  EXPECT_EQ(scales[1], 0x1p-22f);  // so does the block below 1e-4
}

TEST_P(QuantizeFp8Blocks, RoundTripEqualsE4m3OfScaledValueTimesScale) {
  const size_t block = GetParam(), n = 16 * block;
  const std::vector<float> x = varied_blocks(n, block, 13);
  std::vector<float> y = x;
  fp8_round_trip(y.data(), n, block);
  for (size_t b = 0; b < 16; ++b) {
    const float s = test::reference_fp8_scale(block_amax(x, b * block, block));
    for (size_t i = b * block; i < (b + 1) * block; ++i) {
      const float want = float(e4m3_reference_value(e4m3_reference_encode(x[i] / s))) * s;
      ASSERT_EQ(y[i], want) << i;
    }
  }
}

TEST_P(QuantizeFp8Blocks, RoundTripAgreesWithQuantize) {
  const size_t block = GetParam(), n = 8 * block;
  const std::vector<float> x = varied_blocks(n, block, 14);
  std::vector<uint8_t> codes(n);
  std::vector<float> scales(8);
  quantize_fp8(x.data(), n, block, codes.data(), scales.data());
  std::vector<float> y = x;
  fp8_round_trip(y.data(), n, block);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], e4m3_to_float(codes[i]) * scales[i / block]) << i;
}

TEST_P(QuantizeFp8Blocks, RoundTripIsIdempotent) {
  const size_t block = GetParam(), n = 32 * block;
  std::vector<float> once = varied_blocks(n, block, 15);
  fp8_round_trip(once.data(), n, block);
  std::vector<float> twice = once;
  fp8_round_trip(twice.data(), n, block);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(twice[i], once[i]) << i;
}

TEST_P(QuantizeFp8Blocks, ScaledMidpointsRoundToEvenCode) {
  // Each block holds its amax 448 * 2^-5 (so s = 2^-5 exactly) and then exact midpoints of
  // adjacent e4m3 values times s, alternating in sign: x / s is exactly the midpoint and must
  // go to the even code of the pair.
  const size_t block = GetParam();
  const float s = 0x1p-5f;
  std::vector<float> x;
  std::vector<uint8_t> want;
  for (int code = 0; code < 0x7e; ++code) {
    if (x.size() % block == 0) {
      x.push_back(448.0f * s);
      want.push_back(0x7e);
    }
    const double mid = (e4m3_reference_value(code) + e4m3_reference_value(code + 1)) / 2;
    const uint8_t sign = code % 3 == 0 ? 0x80 : 0x00;
    x.push_back(float(sign ? -mid : mid) * s);
    want.push_back(uint8_t(sign | (code % 2 == 0 ? code : code + 1)));
  }
  while (x.size() % block != 0) {
    x.push_back(0.0f);
    want.push_back(0x00);
  }
  std::vector<uint8_t> codes(x.size());
  std::vector<float> scales(x.size() / block);
  quantize_fp8(x.data(), x.size(), block, codes.data(), scales.data());
  for (float scale : scales) EXPECT_EQ(scale, s);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(codes[i], want[i]) << i << ": " << x[i];
  std::vector<float> y = x;
  fp8_round_trip(y.data(), y.size(), block);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(y[i], float(e4m3_reference_value(want[i])) * s) << i << ": " << x[i];
  }
}

TEST_P(QuantizeFp8Blocks, BlockExtremesMapToPlusMinus448) {
  // amax = 448 * 2^-6 = 7 gives s = 2^-6 exactly, so ±7 land on ±448 (0x7e / 0xfe) and stay
  // exact; a block with amax one ulp above 7 gets s = 2^-5 and its max maps to
  // 224.00002 -> 224 = 1.75 * 2^7 (0x76).
  const size_t block = GetParam(), n = 2 * block;
  std::vector<float> x(n, 0.5f);
  x[3] = 7.0f;
  x[5] = -7.0f;
  x[block] = std::nextafter(7.0f, 8.0f);
  x[block + 1] = -std::nextafter(7.0f, 8.0f);
  std::vector<uint8_t> codes(n);
  float scales[2];
  quantize_fp8(x.data(), n, block, codes.data(), scales);
  EXPECT_EQ(scales[0], 0x1p-6f);
  EXPECT_EQ(codes[3], 0x7e);
  EXPECT_EQ(codes[5], 0xfe);
  EXPECT_EQ(codes[0], 0x60);  // 0.5 / 2^-6 = 32 = 1.0 * 2^5: exponent 12
  EXPECT_EQ(scales[1], 0x1p-5f);
  EXPECT_EQ(codes[block], 0x76);
  EXPECT_EQ(codes[block + 1], 0xf6);
  std::vector<float> y = x;
  fp8_round_trip(y.data(), n, block);
  EXPECT_EQ(y[3], 7.0f);
  EXPECT_EQ(y[5], -7.0f);
  EXPECT_EQ(y[block], 7.0f);
  for (size_t i = 0; i < n; ++i) EXPECT_LE(std::fabs(y[i]), 448.0f * scales[i / block]) << i;
}

TEST_P(QuantizeFp8Blocks, ZeroBlockQuantizesToZeroCodesAndFloorScale) {
  const size_t block = GetParam();
  std::vector<float> x(block, 0.0f);
  std::vector<uint8_t> codes(block, 0xaa);
  float scale = 0;
  quantize_fp8(x.data(), block, block, codes.data(), &scale);
  EXPECT_EQ(scale, 0x1p-22f);
  for (uint8_t code : codes) EXPECT_EQ(code, 0x00);
  fp8_round_trip(x.data(), block, block);
  for (float v : x) EXPECT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Widths, QuantizeFp8Blocks,
                         ::testing::Values(kFp8ActivationBlock, kFp8KvBlock),
                         [](const ::testing::TestParamInfo<size_t>& param_info) {
                           return "Block" + std::to_string(param_info.param);
                         });

TEST(QuantizeFp8, BlockWidthsAreTheModelsOnes) {
  EXPECT_EQ(kFp8ActivationBlock, 128u);
  EXPECT_EQ(kFp8KvBlock, 64u);
}

}  // namespace
}  // namespace dsv4
