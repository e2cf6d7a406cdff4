// The device primitives behind the stored attention state against their host twins
// (core/formats.h): exhaustive over e4m3 and e2m1 codes, all bf16 inputs for the e2m1 encoder.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "attention/numerics_probe.h"
#include "attention/test_util.h"
#include "core/formats.h"
#include "core/quantize.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

TEST(AttentionNumerics, E4m3DequantizationIsExactForEveryCodeAndScale) {
  DSV4_REQUIRE_GPU();
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i) codes[size_t(i)] = uint8_t(i);
  DeviceBuffer<uint8_t> d_codes(codes);
  for (float scale : {0x1p-22f, 0x1p-7f, 1.0f, 0x1p7f, 0x1p8f, 0x1p30f}) {
    auto out = test::poisoned<uint16_t>(256);
    test::probe_dequant_e4m3(d_codes.data(), 256, scale, out.data());
    const std::vector<uint16_t> got = out.download();
    for (int c = 0; c < 256; ++c) {
      if ((c & 0x7f) == 0x7f) continue;  // NaN codes, never written
      EXPECT_EQ(got[size_t(c)], float_to_bf16(e4m3_to_float(uint8_t(c)) * scale))
          << "code " << c << " scale " << scale;
    }
  }
}

TEST(AttentionNumerics, E2m1DequantizationIsExactForEveryByteAndScale) {
  DSV4_REQUIRE_GPU();
  std::vector<uint8_t> bytes(256);
  for (int i = 0; i < 256; ++i) bytes[size_t(i)] = uint8_t(i);
  DeviceBuffer<uint8_t> d_bytes(bytes);
  for (int code = 0; code < 255; ++code) {  // every finite ue8m0 scale
    const float scale = ue8m0_to_float(uint8_t(code));
    auto out = test::poisoned<uint16_t>(512);
    test::probe_dequant_e2m1(d_bytes.data(), 256, uint8_t(code), out.data());
    const std::vector<uint16_t> got = out.download();
    for (int b = 0; b < 256; ++b) {
      ASSERT_EQ(got[size_t(2 * b)],
                float_to_bf16(e2m1_to_float(packed_e2m1_low(uint8_t(b))) * scale))
          << "byte " << b << " scale code " << code;
      ASSERT_EQ(got[size_t(2 * b + 1)],
                float_to_bf16(e2m1_to_float(packed_e2m1_high(uint8_t(b))) * scale))
          << "byte " << b << " scale code " << code;
    }
  }
}

TEST(AttentionNumerics, E2m1EncoderMatchesTheHostOnEveryBf16AndEveryMidpoint) {
  DSV4_REQUIRE_GPU();
  std::vector<float> x;
  for (uint32_t bits = 0; bits < 65536; ++bits) x.push_back(bf16_to_float(uint16_t(bits)));
  for (float mid : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f}) {
    for (float sign : {1.0f, -1.0f}) {
      x.push_back(sign * mid);
      x.push_back(sign * std::nextafter(mid, 0.0f));
      x.push_back(sign * std::nextafter(mid, 10.0f));
    }
  }
  const auto n = int(x.size());
  DeviceBuffer<float> d_x(x);
  auto out = test::poisoned<uint8_t>(x.size());
  test::probe_float_to_e2m1(d_x.data(), n, out.data());
  const std::vector<uint8_t> got = out.download();
  int mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (got[i] != float_to_e2m1(x[i]) && ++mismatches < 10) {
      ADD_FAILURE() << "x = " << x[i] << ": device " << int(got[i]) << ", host "
                    << int(float_to_e2m1(x[i]));
    }
  }
  EXPECT_EQ(mismatches, 0);

  // quantize_e2m1 (x / s, clamped) with the FP4 block scales of random blocks.
  auto rng = test::fresh_rng("AttentionNumerics.E2m1");
  std::vector<float> values, scales;
  for (int block = 0; block < 2000; ++block) {
    const float magnitude = std::ldexp(1.0f, int(rng() % 60) - 40);
    std::vector<float> v(32);
    float amax = 0.0f;
    for (float& e : v) {
      e = round_bf16(test::normal(rng) * magnitude);
      amax = std::max(amax, std::fabs(e));
    }
    const float scale = fp4_block_scale(amax);
    for (float e : v) {
      values.push_back(e);
      scales.push_back(scale);
    }
  }
  DeviceBuffer<float> d_values(values), d_scales(scales);
  auto codes = test::poisoned<uint8_t>(values.size());
  test::probe_quantize_e2m1(d_values.data(), d_scales.data(), int(values.size()), codes.data());
  const std::vector<uint8_t> got_codes = codes.download();
  for (size_t i = 0; i < values.size(); ++i) {
    const float clamped = std::clamp(values[i] / scales[i], -kE2m1Max, kE2m1Max);
    ASSERT_EQ(got_codes[i], float_to_e2m1(clamped)) << values[i] << " / " << scales[i];
  }
}

TEST(AttentionNumerics, Ue8m0OfEveryPowerOfTwo) {
  DSV4_REQUIRE_GPU();
  std::vector<float> x;
  for (int e = -127; e <= 127; ++e) x.push_back(std::ldexp(1.0f, e));
  DeviceBuffer<float> d_x(x);
  auto out = test::poisoned<uint8_t>(x.size());
  test::probe_power_of_two_to_ue8m0(d_x.data(), int(x.size()), out.data());
  const std::vector<uint8_t> got = out.download();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(got[i], power_of_two_to_ue8m0(x[i])) << x[i];
}

// The attention kernels' final o / den: random numerators of both signs over 2^-40 .. 2^40 and
// denominators over 1 .. 2^40 (row sums with the sink, at least 1), plus every numerator with
// the denominators whose significands are all ones or a power of two.
TEST(AttentionNumerics, DivisionByReciprocalIsCorrectlyRounded) {
  DSV4_REQUIRE_GPU();
  std::mt19937 rng(20261201);
  std::uniform_real_distribution<float> exponent(-40.0f, 40.0f), den_exponent(0.0f, 40.0f);
  std::vector<float> x, d;
  for (int i = 0; i < (1 << 22); ++i) {
    x.push_back((i % 2 ? -1.0f : 1.0f) * std::exp2(exponent(rng)));
    d.push_back(std::exp2(den_exponent(rng)));
  }
  for (int i = 0; i < (1 << 12); ++i) {
    x.push_back(std::exp2(exponent(rng)));
    d.push_back(i % 2 ? std::nextafter(std::exp2(float(i % 40 + 1)), 0.0f)
                      : std::exp2(float(i % 40)));
  }
  DeviceBuffer<float> d_x(x), d_d(d);
  auto out = test::poisoned<float>(x.size());
  test::probe_divide_rn(d_x.data(), d_d.data(), int(x.size()), out.data());
  const std::vector<float> got = out.download();
  size_t wrong = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (got[i] != x[i] / d[i]) {
      if (wrong++ < 5) ADD_FAILURE() << x[i] << " / " << d[i] << ": " << got[i];
    }
  }
  EXPECT_EQ(wrong, 0u) << "of " << x.size();
}

}  // namespace
}  // namespace dsv4::cuda
