// quantize_activations_fp8 against dsv4::quantize_fp8 (src/core/quantize.h): codes and scales
// must be bit-identical.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "cuda/kernels/gemm/fp8_quantize.h"
#include "gemm/gemm_test_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

// Inputs whose 128-blocks span many magnitudes (down to e4m3 subnormals and the 1e-4 amax
// floor), with an all-zero block and a NaN.
std::vector<float> awkward_inputs(std::mt19937_64& rng, int64_t m, int64_t k) {
  std::vector<float> x = test::random_floats(rng, size_t(m * k), 2);
  std::uniform_int_distribution<int> exponent(-30, 12);
  for (int64_t b = 0; b < m * k / 128; ++b) {
    const int e = exponent(rng);
    for (int64_t i = 0; i < 128; ++i)
      x[size_t(b * 128 + i)] = std::ldexp(x[size_t(b * 128 + i)], e);
  }
  std::fill(x.begin() + 128, x.begin() + 256, 0.0f);
  x[300] = std::numeric_limits<float>::quiet_NaN();
  return x;
}

void expect_matches_host(const std::vector<float>& x_host, const std::vector<float>& x_values,
                         int64_t m, int64_t k, bool bf16_input) {
  const int64_t blocks = k / 128;
  auto codes = test::poisoned<uint8_t>(size_t(m * k));
  auto scales = test::poisoned<float>(size_t(m * blocks));
  if (bf16_input) {
    std::vector<uint16_t> bits(x_host.size());
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = float_to_bf16(x_host[i]);
    const DeviceBuffer<uint16_t> dx(bits);
    quantize_activations_fp8(dx.data(), m, k, codes.data(), scales.data(), nullptr);
  } else {
    const DeviceBuffer<float> dx(x_host);
    quantize_activations_fp8(dx.data(), m, k, codes.data(), scales.data(), nullptr);
  }
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> want_codes(size_t(m * k));
  std::vector<float> want_scales(size_t(m * blocks));
  quantize_fp8(x_values.data(), size_t(m * k), 128, want_codes.data(), want_scales.data());
  const std::vector<uint8_t> got_codes = codes.download();
  const std::vector<float> got_scales = scales.download();
  size_t bad_codes = 0, bad_scales = 0;
  for (size_t i = 0; i < want_codes.size(); ++i) bad_codes += got_codes[i] != want_codes[i];
  for (size_t i = 0; i < want_scales.size(); ++i)
    bad_scales += !test::same_bits(got_scales[i], want_scales[i]);
  EXPECT_EQ(bad_codes, 0u);
  EXPECT_EQ(bad_scales, 0u);
}

TEST(QuantizeActivationsFp8, MatchesTheHostQuantizerBitForBit) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (const int64_t m : {1, 3, 67}) {
    const int64_t k = 4096;
    const std::vector<float> x = awkward_inputs(rng, m, k);
    expect_matches_host(x, x, m, k, false);
  }
}

TEST(QuantizeActivationsFp8, Bf16InputsMatchTheHostQuantizerOfTheirValues) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t m = 5, k = 1024;
  const std::vector<float> x = awkward_inputs(rng, m, k);
  std::vector<float> widened(x.size());
  for (size_t i = 0; i < x.size(); ++i) widened[i] = bf16_to_float(float_to_bf16(x[i]));
  expect_matches_host(x, widened, m, k, true);
}

}  // namespace
}  // namespace dsv4::cuda
