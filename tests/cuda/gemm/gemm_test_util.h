// Shared pieces of the gemm domain's GPU tests: random weights in every checkpoint format
// (built by quantizing random floats with the src/core quantizers), device round trips with
// poisoned outputs (kernel_test_util.h has poisoned() and relative_error()).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/formats.h"
#include "core/quantize.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device_buffer.h"
#include "kernel_test_util.h"
#include "model/weights.h"

namespace dsv4::cuda::test {

// MXFP4 experts on sm_90 tensor cores run on FP8 warpgroup MMAs, which do not add their products
// in exact fp32 (Hopper keeps about 13-14 bits when adding products of different magnitude).
// Decode sizes: one k32 MMA per 32-input scale block (measured 3.3e-5 to 4.9e-5 relative at
// the Flash and Pro shapes); prefill sizes: chains of four per 128 inputs, as DeepSeek's own
// FP8 GEMMs promote (about 2^-13).
inline constexpr double kFp8MmaBlockBound = 1e-4;
inline constexpr double kFp8MmaChainBound = 3e-4;

// Fresh randomness each run; the seed goes into failure messages, and DSV4_TEST_SEED set to it
// replays that run.
inline uint64_t fresh_seed() {
  if (const char* replay = std::getenv("DSV4_TEST_SEED")) return std::strtoull(replay, nullptr, 10);
  std::random_device device;
  return (uint64_t(device()) << 32) | device();
}

// Normal values whose magnitude also varies by powers of two (so that neighbouring scale
// blocks differ), spread = max |log2| of that variation.
inline std::vector<float> random_floats(std::mt19937_64& rng, size_t n, int spread = 3) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-spread, spread);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(normal(rng), exponent(rng));
  return v;
}

inline LinearWeight plain_weight(std::mt19937_64& rng, int64_t rows, int64_t cols,
                                 WeightFormat format) {
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.format = format;
  w.values = random_floats(rng, size_t(rows * cols));
  for (float& v : w.values) v *= 1.0f / std::sqrt(float(cols));
  if (format == WeightFormat::kBF16) {
    for (float& v : w.values) v = round_bf16(v);
  }
  return w;
}

// FP8: e4m3 values with one power-of-two scale per 128x128 block (times scale_factor, to
// exercise non-power-of-two fp32 scales when it is not 1).
inline LinearWeight fp8_weight(std::mt19937_64& rng, int64_t rows, int64_t cols,
                               float scale_factor = 1.0f) {
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.format = WeightFormat::kFp8;
  const std::vector<float> x = random_floats(rng, size_t(rows * cols));
  const int64_t brows = (rows + 127) / 128, bcols = (cols + 127) / 128;
  w.values.resize(x.size());
  w.scales.resize(size_t(brows * bcols));
  for (int64_t br = 0; br < brows; ++br) {
    for (int64_t bc = 0; bc < bcols; ++bc) {
      const int64_t r1 = std::min(rows, br * 128 + 128), c1 = std::min(cols, bc * 128 + 128);
      float amax = 0.0f;
      for (int64_t r = br * 128; r < r1; ++r) {
        for (int64_t c = bc * 128; c < c1; ++c)
          amax = std::max(amax, std::fabs(x[size_t(r * cols + c)]));
      }
      const float scale = fp8_block_scale(amax);
      w.scales[size_t(br * bcols + bc)] = scale * scale_factor;
      for (int64_t r = br * 128; r < r1; ++r) {
        for (int64_t c = bc * 128; c < c1; ++c) {
          const size_t i = size_t(r * cols + c);
          w.values[i] = e4m3_to_float(float_to_e4m3(std::clamp(x[i] / scale, -kE4m3Max, kE4m3Max)));
        }
      }
    }
  }
  return w;
}

// MXFP4: e2m1 values with one ue8m0 scale per 32 inputs of each row (times scale_factor).
inline LinearWeight fp4_weight(std::mt19937_64& rng, int64_t rows, int64_t cols,
                               float scale_factor = 1.0f) {
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.format = WeightFormat::kFp4;
  const std::vector<float> x = random_floats(rng, size_t(rows * cols));
  w.values.resize(x.size());
  w.scales.resize(size_t(rows * cols / 32));
  std::vector<uint8_t> packed(size_t(cols / 2)), codes(size_t(cols / 32));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_fp4(x.data() + r * cols, size_t(cols), packed.data(), codes.data());
    for (size_t j = 0; j < packed.size(); ++j) {
      w.values[size_t(r * cols) + 2 * j] = e2m1_to_float(packed_e2m1_low(packed[j]));
      w.values[size_t(r * cols) + 2 * j + 1] = e2m1_to_float(packed_e2m1_high(packed[j]));
    }
    for (size_t b = 0; b < codes.size(); ++b) {
      w.scales[size_t(r * cols / 32) + b] = ue8m0_to_float(codes[b]) * scale_factor;
    }
  }
  return w;
}

// An NVFP4 weight: random e2m1 codes, random positive e4m3 block scales (2^-3 .. 30, most not
// powers of two) per 16 inputs, and a random fp32 global scale.
inline LinearWeight nvfp4_weight(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.format = WeightFormat::kNvFp4;
  std::uniform_int_distribution<int> e2m1(0, 15), e4m3(0x20, 0x5f);
  w.values.resize(size_t(rows * cols));
  for (float& v : w.values) v = e2m1_to_float(uint8_t(e2m1(rng)));
  w.scales.resize(size_t(rows * cols / 16));
  for (float& s : w.scales) s = e4m3_to_float(uint8_t(e4m3(rng)));
  w.global_scale = std::uniform_real_distribution<float>(0.01f, 1.0f)(rng);
  return w;
}

inline bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

}  // namespace dsv4::cuda::test
