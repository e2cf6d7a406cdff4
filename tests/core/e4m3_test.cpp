// e4m3 "fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, 0x7f/0xff are NaN,
// the largest finite value is 0x7e = 1.75 * 2^8 = 448. Encoding rounds to nearest, ties to
// even, and saturates to ±448.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/formats.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::bits_of;
using test::e4m3_reference_encode;
using test::e4m3_reference_value;
using test::float_of;

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(E4m3, DecodesAll256CodesToFormulaValue) {
  for (int code = 0; code < 256; ++code) {
    const float got = e4m3_to_float(uint8_t(code));
    const double want = e4m3_reference_value(code);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << code;
    } else {
      EXPECT_EQ(double(got), want) << code;
      EXPECT_EQ(std::signbit(got), code >= 0x80) << code;
    }
  }
}

TEST(E4m3, DecodesHandPickedCodes) {
  EXPECT_EQ(e4m3_to_float(0x00), 0.0f);
  EXPECT_EQ(e4m3_to_float(0x01), 0x1p-9f);      // smallest subnormal
  EXPECT_EQ(e4m3_to_float(0x07), 7 * 0x1p-9f);  // largest subnormal
  EXPECT_EQ(e4m3_to_float(0x08), 0x1p-6f);      // smallest normal
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);         // exponent 7, mantissa 0
  EXPECT_EQ(e4m3_to_float(0x3c), 1.5f);         // exponent 7, mantissa 4
  EXPECT_EQ(e4m3_to_float(0x40), 2.0f);         // exponent 8
  EXPECT_EQ(e4m3_to_float(0x77), 240.0f);       // 1.875 * 2^7
  EXPECT_EQ(e4m3_to_float(0x78), 256.0f);       // exponent 15 is finite in "fn"
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);       // 1.75 * 2^8
  EXPECT_EQ(e4m3_to_float(0xfe), -448.0f);
  EXPECT_EQ(e4m3_to_float(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xff)));
  EXPECT_EQ(kE4m3Max, 448.0f);
}

TEST(E4m3, FiniteCodesEncodeToThemselves) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    EXPECT_EQ(float_to_e4m3(float(e4m3_reference_value(code))), code) << code;
  }
}

TEST(E4m3, MidpointsRoundToEvenCode) {
  // Adjacent non-negative codes are adjacent values (0x07 -> 0x08 crosses into the normals);
  // the code LSB is the mantissa LSB, so "even" is the even code of the pair.
  for (int code = 0; code < 0x7e; ++code) {
    const double low = e4m3_reference_value(code), high = e4m3_reference_value(code + 1);
    const float mid = float((low + high) / 2);  // needs 5 significant bits: exact in fp32
    ASSERT_EQ(double(mid), (low + high) / 2);
    const int even = code % 2 == 0 ? code : code + 1;
    EXPECT_EQ(float_to_e4m3(mid), even) << "between " << low << " and " << high;
    EXPECT_EQ(float_to_e4m3(-mid), 0x80 | even) << "between " << -low << " and " << -high;
  }
}

TEST(E4m3, JustAboveAndBelowMidpointsRoundToNearest) {
  for (int code = 0; code < 0x7e; ++code) {
    const double low = e4m3_reference_value(code), high = e4m3_reference_value(code + 1);
    const float mid = float((low + high) / 2);
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 0.0f)), code) << low;
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, kInf)), code + 1) << high;
    EXPECT_EQ(float_to_e4m3(-std::nextafter(mid, 0.0f)), 0x80 | code) << -low;
    EXPECT_EQ(float_to_e4m3(-std::nextafter(mid, kInf)), 0x80 | (code + 1)) << -high;
  }
}

TEST(E4m3, HandPickedValuesRound) {
  EXPECT_EQ(float_to_e4m3(76.8f), 0x6a);         // grid step 8 in [64,128): 80 = 1.25 * 2^6
  EXPECT_EQ(float_to_e4m3(2.56f), 0x42);         // grid step 0.25 in [2,4): 2.5 = 1.25 * 2^1
  EXPECT_EQ(float_to_e4m3(12.8f), 0x55);         // grid step 1 in [8,16): 13 = 1.625 * 2^3
  EXPECT_EQ(float_to_e4m3(432.0f), 0x7e);        // midpoint of 416 (0x7d) and 448 (0x7e): even
  EXPECT_EQ(float_to_e4m3(424.0f), 0x7d);        // nearer 416
  EXPECT_EQ(float_to_e4m3(-0.3f), 0x80 | 0x2a);  // 0.3 -> 0.3125 = 1.25 * 2^-2 (exp 5, m 2)
}

TEST(E4m3, SaturatesToMax) {
  for (float x : {448.0f, 449.0f, 464.0f, 479.0f, 480.0f, 1000.0f, 1e9f, 3e38f, kInf}) {
    EXPECT_EQ(float_to_e4m3(x), 0x7e) << x;
    EXPECT_EQ(float_to_e4m3(-x), 0xfe) << -x;
  }
  EXPECT_EQ(float_to_e4m3(std::nextafter(448.0f, kInf)), 0x7e);
}

TEST(E4m3, SubnormalRangeHasStepsOfTwoToTheMinus9) {
  for (int m = 0; m < 8; ++m) {
    EXPECT_EQ(float_to_e4m3(float(m) * 0x1p-9f), m);
    EXPECT_EQ(e4m3_to_float(uint8_t(m)), float(m) * 0x1p-9f);
  }
}

TEST(E4m3, SubnormalTiesRoundToEven) {
  EXPECT_EQ(float_to_e4m3(0x1p-10f), 0x00);      // half of 2^-9: tie to 0
  EXPECT_EQ(float_to_e4m3(3 * 0x1p-10f), 0x02);  // 1.5 steps: tie to 2 steps = 2^-8
  EXPECT_EQ(e4m3_to_float(float_to_e4m3(3 * 0x1p-10f)), 0x1p-8f);
  EXPECT_EQ(float_to_e4m3(15 * 0x1p-10f), 0x08);  // 7.5 steps: tie to 8 steps = 2^-6
  EXPECT_EQ(float_to_e4m3(std::nextafter(0x1p-10f, kInf)), 0x01);
  EXPECT_EQ(float_to_e4m3(0x1p-20f), 0x00);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(E4m3, NegativeZeroAndUnderflowKeepTheSign) {
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(-0x1p-10f), 0x80);
  EXPECT_TRUE(std::signbit(e4m3_to_float(0x80)));
  EXPECT_EQ(e4m3_to_float(0x80), 0.0f);
}

TEST(E4m3, NanEncodesToNanCode) {
  for (float nan : {std::numeric_limits<float>::quiet_NaN(),
                    -std::numeric_limits<float>::quiet_NaN(), float_of(0x7f800001)}) {
    const uint8_t code = float_to_e4m3(nan);
    EXPECT_EQ(code & 0x7f, 0x7f);
    EXPECT_TRUE(std::isnan(e4m3_to_float(code)));
  }
}

TEST(E4m3, MatchesBruteForceNearestOverFloatSweep) {
  // Every 997th float bit pattern from 0 up to 512 (all binades the format touches, and
  // beyond the saturation point), both signs, against the brute-force search.
  for (uint32_t bits = 0; bits <= bits_of(512.0f); bits += 997) {
    const float x = float_of(bits);
    ASSERT_EQ(float_to_e4m3(x), e4m3_reference_encode(x)) << x;
    ASSERT_EQ(float_to_e4m3(-x), e4m3_reference_encode(-x)) << -x;
  }
}

}  // namespace
}  // namespace dsv4
