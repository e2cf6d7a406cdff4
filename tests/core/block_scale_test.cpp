// power_of_two_ceil and the block-scale rules (MODEL.md §2, kernel.py fast_round_scale):
//   fp8_block_scale(amax) = 2^ceil(log2(fp32(max(amax, 1e-4) * fp32(1/448))))
//   fp4_block_scale(amax) = 2^ceil(log2(fp32(max(amax, 6 * 2^-126) * fp32(1/6))))
// with the ceil(log2) read off the bits of the fp32 product (exponent, +1 if the mantissa is
// non-zero).
//
// fp32(1/448), by hand: 1/448 = 2^-6 / 7 and 1/7 = 0.(001) in binary = 1.(001) * 2^-3, so
// 1/448 = 1.001001...b * 2^-9. The 23 mantissa bits are 00100100100100100100100 and the rest,
// 0.1001...b = 4/7 of an ulp, rounds up: mantissa 0x124925, bits 0x3b124925. That is 3/7 ulp
// too large, a relative error of (3/7) / (8/7) * 2^-23 = 3 * 2^-26.
// Hence 448 * 2^k * fp32(1/448) = 2^k * (1 + 3 * 2^-26) exactly, which rounds (0.375 ulp) to
// 2^k: zero mantissa, scale 2^k. The next float above 448 * 2^k is 448 * 2^k * (1 + 2^-23/1.75),
// whose product is 2^k * (1 + ~0.946 * 2^-23): rounds up to 2^k * (1 + 2^-23), scale 2^(k+1).
//
// fp32(1/6), by hand: 1/6 = 1.(01)b * 2^-3; mantissa 01010101010101010101010 with rest
// 0.(10)b = 2/3 ulp, rounds up: 0x2aaaab, bits 0x3e2aaaab, relative error (1/3)/(4/3) * 2^-23
// = 2^-25. So 6 * 2^k * fp32(1/6) = 2^k * (1 + 2^-25) rounds to 2^k.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/quantize.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::bits_of;
using test::float_of;

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kInv448 = float_of(0x3b124925u);  // fp32(1/448), derived above
const float kInv6 = float_of(0x3e2aaaabu);    // fp32(1/6), derived above

TEST(PowerOfTwoCeil, HandPickedValues) {
  EXPECT_EQ(power_of_two_ceil(1.0f), 1.0f);
  EXPECT_EQ(power_of_two_ceil(1.5f), 2.0f);
  EXPECT_EQ(power_of_two_ceil(2.0f), 2.0f);
  EXPECT_EQ(power_of_two_ceil(3.0f), 4.0f);
  EXPECT_EQ(power_of_two_ceil(0.75f), 1.0f);
  EXPECT_EQ(power_of_two_ceil(0.3f), 0.5f);
  EXPECT_EQ(power_of_two_ceil(1000.0f), 1024.0f);
  EXPECT_EQ(power_of_two_ceil(0x1p-126f), 0x1p-126f);
  EXPECT_EQ(power_of_two_ceil(0x1p127f), 0x1p127f);
}

TEST(PowerOfTwoCeil, OneUlpEitherSideOfAPowerOfTwo) {
  for (int e = -125; e <= 126; ++e) {
    const float p = std::ldexp(1.0f, e);
    EXPECT_EQ(power_of_two_ceil(p), p) << e;
    EXPECT_EQ(power_of_two_ceil(std::nextafter(p, kInf)), 2 * p) << e;
    EXPECT_EQ(power_of_two_ceil(std::nextafter(p, 0.0f)), p) << e;
  }
}

TEST(PowerOfTwoCeil, MatchesSmallestPowerOfTwoNotBelow) {
  test::Lcg rng(1);
  for (int i = 0; i < 100000; ++i) {
    // Random positive normal floats below 2^127 (biased exponent 1..253).
    const uint32_t exponent = 1 + rng.next() % 253, mantissa = rng.next() & 0x7fffff;
    const float x = float_of(exponent << 23 | mantissa);
    double p = test::pow2(-126);
    while (p < double(x)) p *= 2;
    ASSERT_EQ(double(power_of_two_ceil(x)), p) << x;
  }
}

TEST(Fp8BlockScale, InverseOf448IsTheHandDerivedFloat) {
  EXPECT_EQ(bits_of(1.0f / 448.0f), 0x3b124925u);
  EXPECT_GT(double(kInv448), 1.0 / 448.0);  // rounded up, as derived
}

TEST(Fp8BlockScale, ExactMultiplesOf448GiveExactPowerOfTwo) {
  // amax = 448 * 2^k for every k that keeps amax >= 1e-4 (448 * 2^-22 ~ 1.07e-4) and finite.
  for (int k = -22; k <= 118; ++k) {
    const float amax = std::ldexp(448.0f, k);
    const float product = amax * kInv448;
    ASSERT_EQ(bits_of(product) & 0x7fffffu, 0u) << k;  // the product is exactly 2^k
    ASSERT_EQ(product, std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(fp8_block_scale(amax), std::ldexp(1.0f, k)) << k;
  }
}

TEST(Fp8BlockScale, JustAboveMultipleOf448GivesNextPowerOfTwo) {
  for (int k = -22; k <= 117; ++k) {
    const float amax = std::nextafter(std::ldexp(448.0f, k), kInf);
    ASSERT_NE(bits_of(amax * kInv448) & 0x7fffffu, 0u) << k;
    EXPECT_EQ(fp8_block_scale(amax), std::ldexp(1.0f, k + 1)) << k;
  }
}

TEST(Fp8BlockScale, JustBelowMultipleOf448KeepsPowerOfTwo) {
  // 448 * 2^k * (1 - 2^-23/1.75) * (1 + 3 * 2^-26) = 2^k * (1 - ~0.196 * 2^-23): the ulp below
  // 2^k is 2^-24 relative, so the product rounds (0.39 ulp) back up to exactly 2^k.
  for (int k = -21; k <= 118; ++k) {
    const float amax = std::nextafter(std::ldexp(448.0f, k), 0.0f);
    EXPECT_EQ(fp8_block_scale(amax), std::ldexp(1.0f, k)) << k;
  }
}

TEST(Fp8BlockScale, HandPickedValues) {
  EXPECT_EQ(fp8_block_scale(1.0f), 0x1p-8f);  // 1/448 in (2^-9, 2^-8]: 448/256 = 1.75 >= 1
  EXPECT_EQ(fp8_block_scale(3.0f), 0x1p-7f);  // 448/128 = 3.5 >= 3 > 448/256 = 1.75
  EXPECT_EQ(fp8_block_scale(3.5f), 0x1p-7f);  // exactly 448 * 2^-7
  EXPECT_EQ(fp8_block_scale(224.0f), 0.5f);
  EXPECT_EQ(fp8_block_scale(225.0f), 1.0f);
  EXPECT_EQ(fp8_block_scale(448.0f), 1.0f);
  EXPECT_EQ(fp8_block_scale(449.0f), 2.0f);
  EXPECT_EQ(fp8_block_scale(1e6f), 4096.0f);  // 448 * 2^11 = 917504 < 1e6 <= 448 * 2^12
}

TEST(Fp8BlockScale, FloorOf1em4AppliesToTinyAndZeroBlocks) {
  // fp32(1e-4) * fp32(1/448) ~ 2.23e-7 lies in (2^-23, 2^-22] (1.19e-7, 2.38e-7]: scale 2^-22.
  EXPECT_EQ(fp8_block_scale(0.0f), 0x1p-22f);
  EXPECT_EQ(fp8_block_scale(1e-30f), 0x1p-22f);
  EXPECT_EQ(fp8_block_scale(1e-5f), 0x1p-22f);
  EXPECT_EQ(fp8_block_scale(1e-4f), 0x1p-22f);
  EXPECT_EQ(fp8_block_scale(std::ldexp(448.0f, -22)), 0x1p-22f);  // ~1.07e-4, still 2^-22
  EXPECT_EQ(fp8_block_scale(std::nextafter(std::ldexp(448.0f, -22), kInf)), 0x1p-21f);
}

TEST(Fp8BlockScale, MatchesExactCeilingForRandomAmax) {
  // The fp32-product rule agrees with the exact "smallest 2^k with 448 * 2^k >= amax" for every
  // normal amax (the derivation at the top of this file); check it over many magnitudes.
  test::Lcg rng(2);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t exponent = 90 + rng.next() % 140, mantissa = rng.next() & 0x7fffff;
    const float amax = float_of(exponent << 23 | mantissa);  // ~1e-11 .. ~1e31
    ASSERT_EQ(fp8_block_scale(amax), test::reference_fp8_scale(amax)) << amax;
  }
}

TEST(Fp4BlockScale, InverseOf6IsTheHandDerivedFloat) {
  EXPECT_EQ(bits_of(1.0f / 6.0f), 0x3e2aaaabu);
}

TEST(Fp4BlockScale, ExactMultiplesOf6GiveExactPowerOfTwo) {
  for (int k = -126; k <= 125; ++k) {
    const float amax = std::ldexp(6.0f, k);
    const float product = amax * kInv6;
    ASSERT_EQ(product, std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(fp4_block_scale(amax), std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(fp4_block_scale(std::nextafter(amax, kInf)), std::ldexp(1.0f, k + 1)) << k;
  }
}

TEST(Fp4BlockScale, HandPickedValues) {
  EXPECT_EQ(fp4_block_scale(6.0f), 1.0f);
  EXPECT_EQ(fp4_block_scale(0.7f), 0.125f);  // 6/8 = 0.75 >= 0.7 > 6/16 = 0.375
  EXPECT_EQ(fp4_block_scale(1.0f), 0.25f);   // 6/4 = 1.5 >= 1 > 6/8
  EXPECT_EQ(fp4_block_scale(12.0f), 2.0f);
  EXPECT_EQ(fp4_block_scale(12.5f), 4.0f);
}

TEST(Fp4BlockScale, FloorOf6Times2ToTheMinus126) {
  // The floor's product is 2^-126 * (1 + 2^-25) -> 2^-126, the smallest normal (ue8m0 code 1).
  EXPECT_EQ(fp4_block_scale(0.0f), 0x1p-126f);
  EXPECT_EQ(fp4_block_scale(1e-40f), 0x1p-126f);  // a subnormal amax
  EXPECT_EQ(fp4_block_scale(6 * 0x1p-126f), 0x1p-126f);
  EXPECT_EQ(fp4_block_scale(std::nextafter(6 * 0x1p-126f, kInf)), 0x1p-125f);
}

TEST(Fp4BlockScale, MatchesExactCeilingForRandomAmax) {
  test::Lcg rng(3);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t exponent = 1 + rng.next() % 250, mantissa = rng.next() & 0x7fffff;
    const float amax = float_of(exponent << 23 | mantissa);
    ASSERT_EQ(fp4_block_scale(amax), test::reference_fp4_scale(amax)) << amax;
  }
}

}  // namespace
}  // namespace dsv4
