// FP4 block quantization (Lightning Indexer): per 32 values s = fp4_block_scale(amax),
// q = e2m1(clamp(x / s, ±6)); codes packed two per byte (low nibble = even element) with one
// ue8m0 scale code per block.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/formats.h"
#include "core/quantize.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::e2m1_reference_encode;
using test::e2m1_reference_value;

std::vector<float> hand_example() {
  std::vector<float> x(64, 0.0f);
  // Block 0: amax 6 -> s = 1.
  x[0] = 1.0f;
  x[1] = -1.5f;
  x[2] = 6.0f;
  x[3] = 0.3f;
  x[4] = -2.6f;
  x[5] = 4.9f;
  // Block 1: amax 0.7 -> s = 1/8.
  x[32] = 0.7f;
  x[33] = -0.2f;
  x[34] = 0.0625f;
  x[35] = 0.03125f;
  return x;
}

std::vector<float> varied_blocks(size_t blocks, uint64_t seed) {
  test::Lcg rng(seed);
  std::vector<float> x(blocks * 32);
  for (size_t b = 0; b < blocks; ++b) {
    const int exponent = int(rng.next() % 61) - 30;
    for (size_t i = 0; i < 32; ++i) x[b * 32 + i] = std::ldexp(rng.uniform(), exponent);
  }
  for (size_t i = 0; i < 32; ++i) x[i] = 0.0f;  // block 0: all zero
  return x;
}

// ue8m0 code of a power of two, by counting halvings/doublings from 1.
uint8_t exponent_code(float power_of_two) {
  int code = 127;
  for (double p = power_of_two; p > 1.0; p /= 2) ++code;
  for (double p = power_of_two; p < 1.0; p *= 2) --code;
  return uint8_t(code);
}

TEST(QuantizeFp4, HandExample) {
  // Block 0 (s = 1, code 127):
  //   1.0 -> 1 (code 2); -1.5 -> code 8|3 = 0xb; 6 -> code 7; 0.3 > 0.25 -> 0.5 (code 1);
  //   -2.6 < -2.5 -> -3 (code 8|5 = 0xd); 4.9 < 5 -> 4 (code 6).
  //   bytes: 0xb2 (x1:x0), 0x17 (x3:x2), 0x6d (x5:x4), then zeros.
  // Block 1 (amax 0.7: 6/8 = 0.75 >= 0.7 > 6/16, so s = 1/8, code 124):
  //   0.7 -> 5.6 -> 6 (code 7); -0.2 -> -1.6 -> -1.5 (0xb); 0.0625 -> 0.5 (code 1);
  //   0.03125 -> 0.25, the tie between 0 and 0.5 -> 0 (code 0).
  //   bytes: 0xb7, 0x01, then zeros.
  const std::vector<float> x = hand_example();
  std::vector<uint8_t> packed(32, 0xaa);
  uint8_t scale_codes[2] = {0, 0};
  quantize_fp4(x.data(), 64, packed.data(), scale_codes);
  EXPECT_EQ(scale_codes[0], 127);
  EXPECT_EQ(scale_codes[1], 124);
  const uint8_t want[32] = {0xb2, 0x17, 0x6d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0xb7, 0x01, 0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(packed[i], want[i]) << i;
}

TEST(Fp4RoundTrip, HandExample) {
  std::vector<float> y = hand_example();
  fp4_round_trip(y.data(), 64);
  const float want_block0[6] = {1.0f, -1.5f, 6.0f, 0.5f, -3.0f, 4.0f};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(y[i], want_block0[i]) << i;
  EXPECT_EQ(y[32], 0.75f);     // 6 / 8
  EXPECT_EQ(y[33], -0.1875f);  // -1.5 / 8
  EXPECT_EQ(y[34], 0.0625f);   // 0.5 / 8
  EXPECT_EQ(y[35], 0.0f);
  for (size_t i = 36; i < 64; ++i) EXPECT_EQ(y[i], 0.0f) << i;
}

TEST(QuantizeFp4, LowNibbleHoldsEvenElement) {
  std::vector<float> x(32, 0.0f);
  x[0] = 6.0f;   // code 7
  x[1] = -1.0f;  // code 0xa
  x[30] = 0.5f;  // code 1
  x[31] = 3.0f;  // code 5
  std::vector<uint8_t> packed(16);
  uint8_t scale_code;
  quantize_fp4(x.data(), 32, packed.data(), &scale_code);
  EXPECT_EQ(packed[0], 0xa7);
  EXPECT_EQ(packed[15], 0x51);
  EXPECT_EQ(e2m1_to_float(packed_e2m1_low(packed[0])), 6.0f);
  EXPECT_EQ(e2m1_to_float(packed_e2m1_high(packed[0])), -1.0f);
}

TEST(QuantizeFp4, ScaledMidpointsRoundToEvenCode) {
  // amax 6 * 2^-4 gives s = 2^-4 exactly; the 7 grid midpoints times s (both signs) must map
  // to the even code of their pair, as in e2m1 itself.
  const float s = 0x1p-4f;
  const float midpoints[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const uint8_t even[7] = {0, 2, 2, 4, 4, 6, 6};
  std::vector<float> x(32, 0.0f);
  x[0] = 6.0f * s;
  for (size_t i = 0; i < 7; ++i) {
    x[2 + 2 * i] = midpoints[i] * s;
    x[3 + 2 * i] = -midpoints[i] * s;
  }
  std::vector<uint8_t> packed(16);
  uint8_t scale_code;
  quantize_fp4(x.data(), 32, packed.data(), &scale_code);
  EXPECT_EQ(scale_code, 127 - 4);
  EXPECT_EQ(packed[0], 0x07);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(packed[1 + i], uint8_t((8 | even[i]) << 4 | even[i])) << midpoints[i];
  }
  fp4_round_trip(x.data(), 32);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(x[2 + 2 * i], float(e2m1_reference_value(even[i])) * s) << midpoints[i];
    EXPECT_EQ(x[3 + 2 * i], -float(e2m1_reference_value(even[i])) * s) << midpoints[i];
  }
}

TEST(QuantizeFp4, ZeroBlockTakesFloorScaleCode1) {
  // max(0, 6 * 2^-126) / 6 -> 2^-126 = ue8m0 code 1.
  std::vector<float> x(32, 0.0f);
  std::vector<uint8_t> packed(16, 0xaa);
  uint8_t scale_code = 0;
  quantize_fp4(x.data(), 32, packed.data(), &scale_code);
  EXPECT_EQ(scale_code, 1);
  for (uint8_t byte : packed) EXPECT_EQ(byte, 0x00);
}

TEST(QuantizeFp4, ScaleCodesMatchReference) {
  const std::vector<float> x = varied_blocks(64, 21);
  std::vector<uint8_t> packed(x.size() / 2), scale_codes(64);
  quantize_fp4(x.data(), x.size(), packed.data(), scale_codes.data());
  for (size_t b = 0; b < 64; ++b) {
    float amax = 0.0f;
    for (size_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    ASSERT_EQ(scale_codes[b], exponent_code(test::reference_fp4_scale(amax))) << b;
  }
}

TEST(QuantizeFp4, CodesMatchReference) {
  const std::vector<float> x = varied_blocks(64, 22);
  std::vector<uint8_t> packed(x.size() / 2), scale_codes(64);
  quantize_fp4(x.data(), x.size(), packed.data(), scale_codes.data());
  for (size_t b = 0; b < 64; ++b) {
    float amax = 0.0f;
    for (size_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    const float s = test::reference_fp4_scale(amax);
    for (size_t i = b * 32; i < (b + 1) * 32; ++i) {
      const uint8_t nibble = uint8_t(i % 2 == 0 ? packed[i / 2] & 0x0f : packed[i / 2] >> 4);
      ASSERT_EQ(nibble, e2m1_reference_encode(x[i] / s)) << i;
    }
  }
}

TEST(Fp4RoundTrip, EqualsE2m1OfScaledValueTimesScale) {
  const std::vector<float> x = varied_blocks(64, 23);
  std::vector<float> y = x;
  fp4_round_trip(y.data(), y.size());
  for (size_t b = 0; b < 64; ++b) {
    float amax = 0.0f;
    for (size_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    const float s = test::reference_fp4_scale(amax);
    for (size_t i = b * 32; i < (b + 1) * 32; ++i) {
      ASSERT_EQ(y[i], float(e2m1_reference_value(e2m1_reference_encode(x[i] / s))) * s) << i;
    }
  }
}

TEST(Fp4RoundTrip, AgreesWithQuantize) {
  const std::vector<float> x = varied_blocks(16, 24);
  std::vector<uint8_t> packed(x.size() / 2), scale_codes(16);
  quantize_fp4(x.data(), x.size(), packed.data(), scale_codes.data());
  std::vector<float> y = x;
  fp4_round_trip(y.data(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t nibble =
        (i % 2 == 0) ? packed_e2m1_low(packed[i / 2]) : packed_e2m1_high(packed[i / 2]);
    ASSERT_EQ(y[i], e2m1_to_float(nibble) * ue8m0_to_float(scale_codes[i / 32])) << i;
  }
}

TEST(Fp4RoundTrip, BlocksAreIndependent) {
  std::vector<float> x = varied_blocks(4, 25);
  std::vector<float> once = x;
  fp4_round_trip(once.data(), once.size());
  for (size_t i = 64; i < 96; ++i) x[i] *= 1e5f;  // change block 2 only
  fp4_round_trip(x.data(), x.size());
  for (size_t i = 0; i < 128; ++i) {
    if (i >= 64 && i < 96) continue;
    ASSERT_EQ(x[i], once[i]) << i;
  }
}

TEST(Fp4RoundTrip, IsIdempotent) {
  std::vector<float> once = varied_blocks(64, 26);
  fp4_round_trip(once.data(), once.size());
  std::vector<float> twice = once;
  fp4_round_trip(twice.data(), twice.size());
  for (size_t i = 0; i < once.size(); ++i) ASSERT_EQ(twice[i], once[i]) << i;
}

TEST(QuantizeFp4, BlockWidthIs32) {
  EXPECT_EQ(kFp4Block, 32u);
}

}  // namespace
}  // namespace dsv4
