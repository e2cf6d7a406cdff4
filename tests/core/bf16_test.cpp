// bf16: the top 16 bits of an fp32; encoding rounds to nearest, ties to even, overflows to inf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/formats.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::bits_of;
using test::float_of;

TEST(Bf16, DecodesEveryCodeByFormula) {
  for (uint32_t code = 0; code < 0x10000; ++code) {
    const float got = bf16_to_float(uint16_t(code));
    const double want = test::bf16_reference_value(uint16_t(code));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << std::hex << code;
    } else {
      EXPECT_EQ(double(got), want) << std::hex << code;
      EXPECT_EQ(std::signbit(got), (code & 0x8000) != 0) << std::hex << code;
    }
  }
}

TEST(Bf16, RepresentableValuesEncodeToThemselves) {
  for (uint32_t code = 0; code < 0x10000; ++code) {
    if ((code & 0x7f80) == 0x7f80 && (code & 0x7f) != 0) continue;  // NaN
    EXPECT_EQ(float_to_bf16(float_of(code << 16)), code) << std::hex << code;
  }
}

TEST(Bf16, TieRoundsDownToEvenCode) {
  // 1 + 2^-8 (0x3f808000) lies halfway between 1.0 (0x3f80, even) and 1 + 2^-7 (0x3f81).
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-(1.0f + 0x1p-8f)), 0xbf80);
}

TEST(Bf16, TieRoundsUpToEvenCode) {
  // 1 + 3*2^-8 (0x3f818000) lies halfway between 0x3f81 (odd) and 0x3f82 = 1 + 2^-6 (even).
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(float_to_bf16(-(1.0f + 3 * 0x1p-8f)), 0xbf82);
  EXPECT_EQ(round_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
}

TEST(Bf16, JustAboveAndBelowTieRoundToNearest) {
  EXPECT_EQ(float_to_bf16(float_of(0x3f808001)), 0x3f81);  // just above a tie: up
  EXPECT_EQ(float_to_bf16(float_of(0x3f807fff)), 0x3f80);  // just below a tie: down
  EXPECT_EQ(float_to_bf16(float_of(0x3f818001)), 0x3f82);
  EXPECT_EQ(float_to_bf16(float_of(0x3f817fff)), 0x3f81);
  EXPECT_EQ(float_to_bf16(float_of(0xbf817fff)), 0xbf81);
}

TEST(Bf16, NanStaysNan) {
  // Quiet, signalling (payload only in the low 16 bits: naive rounding would make it inf) and
  // negative NaNs.
  for (uint32_t bits :
       {0x7fc00000u, 0x7f800001u, 0x7f80ffffu, 0xff800001u, 0xffc00000u, 0x7fffffffu}) {
    const uint16_t code = float_to_bf16(float_of(bits));
    EXPECT_EQ(code & 0x7f80, 0x7f80) << std::hex << bits;
    EXPECT_NE(code & 0x7f, 0) << std::hex << bits;
    EXPECT_TRUE(std::isnan(bf16_to_float(code))) << std::hex << bits;
  }
}

TEST(Bf16, OverflowRoundsToInfinity) {
  // The largest bf16 is 0x7f7f = (2 - 2^-7) * 2^127; the halfway point to 2^128 is 0x7f7f8000,
  // a tie whose even neighbour is 0x7f80 = inf.
  EXPECT_EQ(float_to_bf16(float_of(0x7f7f7fff)), 0x7f7f);
  EXPECT_EQ(float_to_bf16(float_of(0x7f7f8000)), 0x7f80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(Bf16, SubnormalsRoundToNearestEven) {
  // bf16 subnormals are m * 2^-133.
  EXPECT_EQ(bf16_to_float(0x0001), 0x1p-133f);
  EXPECT_EQ(bf16_to_float(0x007f), 127 * 0x1p-133f);
  EXPECT_EQ(float_to_bf16(0x1p-133f), 0x0001);
  EXPECT_EQ(float_to_bf16(0x1p-134f), 0x0000);             // tie between 0 and 2^-133: 0
  EXPECT_EQ(float_to_bf16(3 * 0x1p-134f), 0x0002);         // tie between 1 and 2 steps: 2
  EXPECT_EQ(float_to_bf16(float_of(0x00008001)), 0x0001);  // just above the first tie
  EXPECT_EQ(float_to_bf16(float_of(0x007fffff)), 0x0080);  // rounds up into 2^-126
  EXPECT_EQ(float_to_bf16(float_of(0x807fffff)), 0x8080);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Bf16, SignedZerosKeepTheirSign) {
  EXPECT_EQ(float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(bf16_to_float(0x8000)));
  EXPECT_TRUE(std::signbit(round_bf16(-0x1p-140f)));  // underflows to -0
}

TEST(Bf16, MatchesBruteForceNearestForManyFloats) {
  // Every high half (all exponents, both signs) with low halves around the tie and the ends.
  const uint32_t lows[] = {0x0000, 0x0001, 0x3fff, 0x7ffe, 0x7fff, 0x8000,
                           0x8001, 0xbfff, 0xfffe, 0xffff, 0x1234, 0xedcb};
  for (uint32_t high = 0; high < 0x10000; ++high) {
    for (uint32_t low : lows) {
      const float x = float_of(high << 16 | low);
      if (std::isnan(x)) continue;
      ASSERT_EQ(float_to_bf16(x), test::bf16_reference_encode(x)) << std::hex << bits_of(x);
    }
  }
}

}  // namespace
}  // namespace dsv4
