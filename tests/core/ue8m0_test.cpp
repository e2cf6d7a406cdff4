// ue8m0: an unsigned 8-bit exponent, value 2^(code - 127); code 255 is NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "core/formats.h"
#include "reference.h"

namespace dsv4 {
namespace {

using test::float_of;

// 2^(code-127) as fp32 bits: a normal number with biased exponent `code` and zero mantissa
// for code >= 1; code 0 is 2^-127, the subnormal with only mantissa bit 22 set.
float power_of_two_by_bits(int code) {
  return code == 0 ? float_of(0x00400000u) : float_of(uint32_t(code) << 23);
}

TEST(Ue8m0, DecodesCodes0To254AsPowersOfTwo) {
  for (int code = 0; code < 255; ++code) {
    EXPECT_EQ(ue8m0_to_float(uint8_t(code)), power_of_two_by_bits(code)) << code;
    EXPECT_EQ(double(ue8m0_to_float(uint8_t(code))), test::pow2(code - 127)) << code;
  }
}

TEST(Ue8m0, DecodesHandPickedCodes) {
  EXPECT_EQ(ue8m0_to_float(127), 1.0f);
  EXPECT_EQ(ue8m0_to_float(128), 2.0f);
  EXPECT_EQ(ue8m0_to_float(126), 0.5f);
  EXPECT_EQ(ue8m0_to_float(120), 0.0078125f);  // 2^-7
  EXPECT_EQ(ue8m0_to_float(1), 0x1p-126f);
  EXPECT_EQ(ue8m0_to_float(0), 0x1p-127f);
  EXPECT_EQ(ue8m0_to_float(254), 0x1p127f);
}

TEST(Ue8m0, Code255IsNan) {
  EXPECT_TRUE(std::isnan(ue8m0_to_float(255)));
}

TEST(Ue8m0, PowerOfTwoRoundTripsThroughCode) {
  for (int code = 0; code < 255; ++code) {
    EXPECT_EQ(power_of_two_to_ue8m0(power_of_two_by_bits(code)), code) << code;
  }
}

TEST(Ue8m0, EncodesHandPickedPowersOfTwo) {
  EXPECT_EQ(power_of_two_to_ue8m0(1.0f), 127);
  EXPECT_EQ(power_of_two_to_ue8m0(0.5f), 126);
  EXPECT_EQ(power_of_two_to_ue8m0(0.125f), 124);
  EXPECT_EQ(power_of_two_to_ue8m0(1024.0f), 137);
  EXPECT_EQ(power_of_two_to_ue8m0(0x1p-22f), 105);
  EXPECT_EQ(power_of_two_to_ue8m0(0x1p-127f), 0);
  EXPECT_EQ(power_of_two_to_ue8m0(0x1p127f), 254);
}

}  // namespace
}  // namespace dsv4
