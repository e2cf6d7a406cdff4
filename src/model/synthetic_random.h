// Random numbers for synthetic models that are bit-identical on every platform: splitmix64
// streams keyed by name, and a normal-like variate built from integer arithmetic only
// (std::normal_distribution and libm are not reproducible across standard libraries).
#pragma once

#include <cstdint>
#include <string_view>

namespace dsv4 {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, bound), bound > 0 (the tiny modulo bias does not matter here).
  uint64_t below(uint64_t bound) { return next() % bound; }

 private:
  uint64_t state_;
};

// A seed for the stream named `label` (e.g. a tensor name) under `seed`.
inline uint64_t derive_seed(uint64_t seed, std::string_view label) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (const char c : label) hash = (hash ^ uint8_t(c)) * 0x100000001b3ull;
  return SplitMix64(seed ^ hash).next();
}
inline uint64_t derive_seed(uint64_t seed, uint64_t index) {
  return SplitMix64(seed + 0x9e3779b97f4a7c15ull * (index + 1)).next();
}

// Mean 0, variance 1: the sum of four uniform 16-bit draws (Irwin-Hall), centred and scaled.
// Bounded by ±2·sqrt(3), which keeps random weights free of outliers.
inline float normalish(uint64_t bits) {
  uint32_t sum = 0;
  for (int i = 0; i < 4; ++i) sum += uint32_t((bits >> (16 * i)) & 0xffff);
  // Each draw is (u + 0.5) / 65536, uniform on (0, 1) with variance 1/12; the sum is exact.
  const float total = (float(sum) + 2.0f) * (1.0f / 65536.0f);
  return (total - 2.0f) * 1.7320508f;
}

}  // namespace dsv4
