#include "core/quantize.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/formats.h"

namespace dsv4 {
namespace {

float block_amax(const float* x, size_t n) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

constexpr float kFp8MaxInverse = 1.0f / kE4m3Max;
constexpr float kFp4MaxInverse = 1.0f / kE2m1Max;
constexpr float kFp4AmaxFloor = 6.0f * 0x1p-126f;
constexpr float kFp8AmaxFloor = 1e-4f;

}  // namespace

float power_of_two_ceil(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t exponent = (bits >> 23) & 0xff;
  const uint32_t mantissa = bits & 0x7fffff;
  return std::bit_cast<float>((exponent + (mantissa != 0 ? 1u : 0u)) << 23);
}

float fp8_block_scale(float amax) {
  return power_of_two_ceil(std::max(amax, kFp8AmaxFloor) * kFp8MaxInverse);
}

float fp4_block_scale(float amax) {
  return power_of_two_ceil(std::max(amax, kFp4AmaxFloor) * kFp4MaxInverse);
}

void quantize_fp8(const float* x, size_t n, size_t block, uint8_t* codes, float* scales) {
  for (size_t b = 0; b * block < n; ++b) {
    const float* xb = x + b * block;
    const float scale = fp8_block_scale(block_amax(xb, block));
    scales[b] = scale;
    for (size_t i = 0; i < block; ++i) {
      codes[b * block + i] = float_to_e4m3(std::clamp(xb[i] / scale, -kE4m3Max, kE4m3Max));
    }
  }
}

void fp8_round_trip(float* x, size_t n, size_t block) {
  for (size_t b = 0; b * block < n; ++b) {
    float* xb = x + b * block;
    const float scale = fp8_block_scale(block_amax(xb, block));
    for (size_t i = 0; i < block; ++i) {
      xb[i] = e4m3_to_float(float_to_e4m3(std::clamp(xb[i] / scale, -kE4m3Max, kE4m3Max))) * scale;
    }
  }
}

void quantize_fp4(const float* x, size_t n, uint8_t* packed, uint8_t* scale_codes) {
  for (size_t b = 0; b * kFp4Block < n; ++b) {
    const float* xb = x + b * kFp4Block;
    const float scale = fp4_block_scale(block_amax(xb, kFp4Block));
    scale_codes[b] = power_of_two_to_ue8m0(scale);
    for (size_t i = 0; i < kFp4Block; i += 2) {
      const uint8_t low = float_to_e2m1(std::clamp(xb[i] / scale, -kE2m1Max, kE2m1Max));
      const uint8_t high = float_to_e2m1(std::clamp(xb[i + 1] / scale, -kE2m1Max, kE2m1Max));
      packed[(b * kFp4Block + i) / 2] = uint8_t(low | (high << 4));
    }
  }
}

void fp4_round_trip(float* x, size_t n) {
  for (size_t b = 0; b * kFp4Block < n; ++b) {
    float* xb = x + b * kFp4Block;
    const float scale = fp4_block_scale(block_amax(xb, kFp4Block));
    for (size_t i = 0; i < kFp4Block; ++i) {
      xb[i] = e2m1_to_float(float_to_e2m1(std::clamp(xb[i] / scale, -kE2m1Max, kE2m1Max))) * scale;
    }
  }
}

}  // namespace dsv4
