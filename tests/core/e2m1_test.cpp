// e2m1 (FP4): bit 3 sign, 2 exponent bits, 1 mantissa bit; magnitudes
// {0, 0.5, 1, 1.5, 2, 3, 4, 6}. Encoding rounds to nearest, ties to even, saturates at 6.
// Packed: two codes per byte, the low nibble holds the even element.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/formats.h"
#include "reference.h"

namespace dsv4 {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(E2m1, DecodesAll16Codes) {
  const float want[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (int code = 0; code < 16; ++code) {
    EXPECT_EQ(e2m1_to_float(uint8_t(code)), want[code]) << code;
    EXPECT_EQ(std::signbit(e2m1_to_float(uint8_t(code))), code >= 8) << code;
  }
  EXPECT_EQ(kE2m1Max, 6.0f);
}

TEST(E2m1, DecodeIgnoresHighNibble) {
  EXPECT_EQ(e2m1_to_float(0xf3), e2m1_to_float(0x03));
  EXPECT_EQ(e2m1_to_float(0x3d), -3.0f);
}

TEST(E2m1, GridValuesEncodeToThemselves) {
  for (int code = 0; code < 16; ++code) {
    EXPECT_EQ(float_to_e2m1(float(test::e2m1_reference_value(code))), code) << code;
  }
}

TEST(E2m1, MidpointsRoundToEvenCodes) {
  struct Case {
    float x;
    uint8_t code;
  };
  // Midpoint: neighbours (codes) -> even code.
  const Case cases[] = {
      {0.25f, 0},  // 0 (0) | 0.5 (1)   -> 0
      {0.75f, 2},  // 0.5 (1) | 1 (2)   -> 1
      {1.25f, 2},  // 1 (2) | 1.5 (3)   -> 1
      {1.75f, 4},  // 1.5 (3) | 2 (4)   -> 2
      {2.5f, 4},   // 2 (4) | 3 (5)     -> 2
      {3.5f, 6},   // 3 (5) | 4 (6)     -> 4
      {5.0f, 6},   // 4 (6) | 6 (7)     -> 4
  };
  for (const Case& c : cases) {
    EXPECT_EQ(float_to_e2m1(c.x), c.code) << c.x;
    EXPECT_EQ(float_to_e2m1(-c.x), 8 | c.code) << -c.x;
  }
}

TEST(E2m1, JustAboveAndBelowMidpointsRoundToNearest) {
  const float midpoints[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  for (int lower = 0; lower < 7; ++lower) {
    const float mid = midpoints[lower];
    EXPECT_EQ(float_to_e2m1(std::nextafter(mid, 0.0f)), lower) << mid;
    EXPECT_EQ(float_to_e2m1(std::nextafter(mid, kInf)), lower + 1) << mid;
    EXPECT_EQ(float_to_e2m1(-std::nextafter(mid, kInf)), 8 | (lower + 1)) << mid;
  }
}

TEST(E2m1, SaturatesBeyondSix) {
  for (float x : {6.0f, 6.5f, 7.0f, 100.0f, 3e38f, kInf}) {
    EXPECT_EQ(float_to_e2m1(x), 7) << x;
    EXPECT_EQ(float_to_e2m1(-x), 15) << -x;
  }
}

TEST(E2m1, SignedZeroKeepsSign) {
  EXPECT_EQ(float_to_e2m1(0.0f), 0);
  EXPECT_EQ(float_to_e2m1(-0.0f), 8);
  EXPECT_EQ(float_to_e2m1(-0.2f), 8);
}

TEST(E2m1, NanEncodesToPlusSix) {
  EXPECT_EQ(float_to_e2m1(std::numeric_limits<float>::quiet_NaN()), 7);
}

TEST(E2m1, MatchesBruteForceNearestOverSweep) {
  for (int i = -8192; i <= 8192; ++i) {
    const float x = float(i) * 0x1p-10f;  // [-8, 8] in steps of 2^-10: hits every midpoint
    ASSERT_EQ(float_to_e2m1(x), test::e2m1_reference_encode(x)) << x;
  }
}

TEST(E2m1, PackedLowNibbleIsEvenElement) {
  // Byte 0xa3: element 0 (even) = 0x3 = 1.5, element 1 (odd) = 0xa = -1.0.
  EXPECT_EQ(packed_e2m1_low(0xa3), 0x3);
  EXPECT_EQ(packed_e2m1_high(0xa3), 0xa);
  EXPECT_EQ(e2m1_to_float(packed_e2m1_low(0xa3)), 1.5f);
  EXPECT_EQ(e2m1_to_float(packed_e2m1_high(0xa3)), -1.0f);
  EXPECT_EQ(packed_e2m1_low(0x0f), 0xf);
  EXPECT_EQ(packed_e2m1_high(0x0f), 0x0);
}

}  // namespace
}  // namespace dsv4
