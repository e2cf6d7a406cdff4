// Independent reference definitions for the core format tests. Nothing here calls src/core:
// every value comes from the format's definition, written differently from the engine's code
// (integer formulas, brute-force nearest search with explicit tie-to-even), so that the tests
// are an oracle rather than a mirror.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace dsv4::test {

inline uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}
inline float float_of(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

// 2^e as a double by repeated doubling/halving (no ldexp, no pow).
inline double pow2(int e) {
  double p = 1.0;
  for (; e > 0; --e) p *= 2.0;
  for (; e < 0; ++e) p *= 0.5;
  return p;
}

// ---- bf16 -------------------------------------------------------------------------------
// Magnitude of a bf16 code by formula. Exponent 0xff: +inf is returned as 2^128 when
// `inf_as_2_128` (the value IEEE rounding uses as the next step past the largest finite).
inline double bf16_reference_magnitude(uint16_t code, bool inf_as_2_128 = false) {
  const int exponent = (code >> 7) & 0xff, mantissa = code & 0x7f;
  if (exponent == 0xff) {
    if (mantissa != 0) return std::numeric_limits<double>::quiet_NaN();
    return inf_as_2_128 ? pow2(128) : std::numeric_limits<double>::infinity();
  }
  if (exponent == 0) return mantissa * pow2(-133);  // subnormal: m * 2^-126 / 128
  return (128 + mantissa) * pow2(exponent - 127 - 7);
}

inline double bf16_reference_value(uint16_t code) {
  const double magnitude = bf16_reference_magnitude(code);
  return (code & 0x8000) ? -magnitude : magnitude;
}

// Nearest bf16 of a non-NaN float: the candidates are the truncated code and the next one up
// in magnitude; the nearer wins, a tie goes to the even code.
inline uint16_t bf16_reference_encode(float x) {
  const uint16_t low = uint16_t(bits_of(x) >> 16);
  if ((low & 0x7fff) == 0x7f80) return low;  // ±inf
  const uint16_t high = uint16_t(low + 1);
  const double magnitude = std::fabs(double(x));
  const double below = magnitude - bf16_reference_magnitude(low, true);
  const double above = bf16_reference_magnitude(high, true) - magnitude;
  if (below < above) return low;
  if (above < below) return high;
  return (low & 1) == 0 ? low : high;
}

// ---- e4m3 (fn) ----------------------------------------------------------------------------
// Every finite e4m3 value is an integer multiple of 2^-9:
//   exponent 0: m * 2^-9;  exponent e > 0: (8 + m) * 2^(e-1) * 2^-9.
inline double e4m3_reference_value(int code) {
  if ((code & 0x7f) == 0x7f) return std::numeric_limits<double>::quiet_NaN();
  const int exponent = (code >> 3) & 0xf, mantissa = code & 7;
  const long units = exponent == 0 ? mantissa : long(8 + mantissa) << (exponent - 1);
  const double magnitude = double(units) / 512.0;
  return (code & 0x80) ? -magnitude : magnitude;
}

// Nearest finite e4m3 code by searching all 127 non-negative finite codes; a tie goes to the
// code whose mantissa LSB (= code LSB) is zero. Magnitudes >= 448 saturate to 448 (0x7e).
inline uint8_t e4m3_reference_encode(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double magnitude = std::fabs(double(x));
  if (magnitude >= 448.0) return uint8_t(sign | 0x7e);
  int best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  for (int code = 0; code <= 0x7e; ++code) {
    const double distance = std::fabs(e4m3_reference_value(code) - magnitude);
    if (distance < best_distance || (distance == best_distance && code % 2 == 0)) {
      best = code;
      best_distance = distance;
    }
  }
  return uint8_t(sign | best);
}

// ---- e2m1 ----------------------------------------------------------------------------------
inline constexpr double kE2m1Grid[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};

inline double e2m1_reference_value(int code) {
  return (code & 8) ? -kE2m1Grid[code & 7] : kE2m1Grid[code & 7];
}

inline uint8_t e2m1_reference_encode(float x) {
  const uint8_t sign = std::signbit(x) ? 8 : 0;
  const double magnitude = std::fabs(double(x));
  int best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  for (int code = 0; code < 8; ++code) {
    const double distance = std::fabs(kE2m1Grid[code] - magnitude);
    if (distance < best_distance || (distance == best_distance && code % 2 == 0)) {
      best = code;
      best_distance = distance;
    }
  }
  return uint8_t(sign | best);
}

// ---- power-of-two block scales ----------------------------------------------------------
// The smallest power of two p with p * max_code >= max(amax, floor), found by exact double
// arithmetic (p * max_code is exact). For every float amax this equals the engine's rule of
// taking ceil(log2) on the bits of the fp32 product amax * fp32(1/max_code): see
// block_scale_test.cpp for why.
inline float reference_block_scale(float amax, float floor, double max_code) {
  const double a = std::fmax(double(amax), double(floor));
  double p = 1.0;
  while (p * max_code < a) p *= 2.0;
  while ((p * 0.5) * max_code >= a) p *= 0.5;
  return float(p);
}

inline float reference_fp8_scale(float amax) {
  return reference_block_scale(amax, 1e-4f, 448.0);
}
inline float reference_fp4_scale(float amax) {
  return reference_block_scale(amax, float(6.0 * pow2(-126)), 6.0);
}

// A small deterministic generator (no dependence on the standard library's distributions,
// whose output differs between implementations).
class Lcg {
 public:
  explicit Lcg(uint64_t seed) : state_(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  uint32_t next() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state_ >> 32);
  }
  // Uniform in [-1, 1).
  float uniform() { return float(next() >> 8) * 0x1p-23f - 1.0f; }

 private:
  uint64_t state_;
};

}  // namespace dsv4::test
