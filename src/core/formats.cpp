#include "core/formats.h"

#include <array>
#include <cmath>
#include <limits>

namespace dsv4 {
namespace {

std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int sign = code >> 7, exponent = (code >> 3) & 0xf, mantissa = code & 7;
    float magnitude;
    if (exponent == 0xf && mantissa == 7) {
      magnitude = std::numeric_limits<float>::quiet_NaN();
    } else if (exponent == 0) {
      magnitude = std::ldexp(float(mantissa), -9);  // subnormal: m * 2^-9
    } else {
      magnitude = std::ldexp(1.0f + float(mantissa) / 8.0f, exponent - 7);
    }
    table[code] = sign ? -magnitude : magnitude;
  }
  return table;
}

const std::array<float, 256> kE4m3Table = make_e4m3_table();
constexpr std::array<float, 8> kE2m1Magnitudes = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

}  // namespace

float e4m3_to_float(uint8_t code) {
  return kE4m3Table[code];
}

uint8_t float_to_e4m3(float value) {
  if (std::isnan(value)) return 0x7f;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  double magnitude = std::fmin(std::fabs(double(value)), double(kE4m3Max));
  if (magnitude < 0x1p-6) {
    // Subnormal range: steps of 2^-9; a result of 8 steps is exactly the smallest normal (code 8).
    const double steps = std::nearbyint(magnitude * 512.0);
    return uint8_t(sign | uint8_t(steps));
  }
  int exponent;
  const double fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent
  exponent -= 1;  // now magnitude = (2*fraction) * 2^exponent
  double mantissa = std::nearbyint((2.0 * fraction - 1.0) * 8.0);
  if (mantissa == 8.0) {
    mantissa = 0.0;
    exponent += 1;
  }
  return uint8_t(sign | uint8_t((exponent + 7) << 3) | uint8_t(mantissa));
}

float ue8m0_to_float(uint8_t code) {
  if (code == 0xff) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(code) - 127);
}

uint8_t power_of_two_to_ue8m0(float scale) {
  int exponent;
  std::frexp(scale, &exponent);
  return uint8_t(exponent - 1 + 127);
}

float e2m1_to_float(uint8_t code) {
  const float magnitude = kE2m1Magnitudes[code & 7];
  return (code & 8) ? -magnitude : magnitude;
}

uint8_t float_to_e2m1(float value) {
  if (std::isnan(value)) return 7;
  const uint8_t sign = std::signbit(value) ? 8 : 0;
  const float magnitude = std::fabs(value);
  // Walk the grid; at an exact midpoint pick the even code (ties to even).
  uint8_t best = 7;
  for (uint8_t code = 0; code < 7; ++code) {
    const float low = kE2m1Magnitudes[code], high = kE2m1Magnitudes[code + 1];
    const float mid = 0.5f * (low + high);
    if (magnitude < mid) {
      best = code;
      break;
    }
    if (magnitude == mid) {
      best = (code % 2 == 0) ? code : uint8_t(code + 1);
      break;
    }
  }
  return uint8_t(sign | best);
}

}  // namespace dsv4
