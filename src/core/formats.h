// Exact conversions between float and the narrow formats DeepSeek-V4 stores:
// bf16, e4m3 (FP8, the "fn" variant: no infinities, max 448), ue8m0 (power-of-two
// scales) and e2m1 (FP4). Every encoder rounds to nearest, ties to even, and saturates.
#pragma once

#include <bit>
#include <cstdint>

namespace dsv4 {

// ---- bf16 ------------------------------------------------------------------------------
inline float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(uint32_t(bits) << 16);
}

inline uint16_t float_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// Rounds a float to the nearest bf16 value and returns it as a float.
inline float round_bf16(float value) {
  return bf16_to_float(float_to_bf16(value));
}

// ---- e4m3 ------------------------------------------------------------------------------
inline constexpr float kE4m3Max = 448.0f;
float e4m3_to_float(uint8_t code);
uint8_t float_to_e4m3(float value);  // NaN -> 0x7f; |value| > 448 saturates to ±448

// ---- ue8m0 -----------------------------------------------------------------------------
// value = 2^(code - 127); code 255 is NaN.
float ue8m0_to_float(uint8_t code);
// `scale` must be a power of two in [2^-127, 2^127]; anything else is a programming error.
uint8_t power_of_two_to_ue8m0(float scale);

// ---- e2m1 ------------------------------------------------------------------------------
inline constexpr float kE2m1Max = 6.0f;
float e2m1_to_float(uint8_t code);   // low 4 bits used: bit 3 sign, then 2 exponent, 1 mantissa
uint8_t float_to_e2m1(float value);  // |value| > 6 saturates to ±6; NaN -> +6

// Packed FP4: two codes per byte, low nibble holds the even element.
inline uint8_t packed_e2m1_low(uint8_t byte) {
  return byte & 0x0f;
}
inline uint8_t packed_e2m1_high(uint8_t byte) {
  return byte >> 4;
}

}  // namespace dsv4
