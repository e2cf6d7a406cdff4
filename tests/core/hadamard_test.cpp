// Normalized Walsh-Hadamard transform: y = H x * n^-0.5 with the Sylvester matrix
// H[i][j] = (-1)^popcount(i & j).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/hadamard.h"
#include "reference.h"

namespace dsv4 {
namespace {

// Naive O(n^2) product with the explicit Sylvester matrix, in double.
std::vector<double> naive_hadamard(const std::vector<float>& x) {
  const size_t n = x.size();
  std::vector<double> y(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const double sign = std::popcount(i & j) % 2 == 0 ? 1.0 : -1.0;
      y[i] += sign * double(x[j]);
    }
    y[i] /= std::sqrt(double(n));
  }
  return y;
}

std::vector<float> random_vector(size_t n, uint64_t seed) {
  test::Lcg rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = rng.uniform();
  return x;
}

TEST(Hadamard, Size128MatchesExplicitSylvesterMatrix) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    std::vector<float> x = random_vector(128, seed);
    const std::vector<double> want = naive_hadamard(x);
    hadamard_transform(x.data(), 128);
    // Inputs in [-1, 1): |y| <= 128 / sqrt(128) ~ 11.3; seven fp32 butterfly stages and the
    // scale leave errors far below 1e-5.
    for (size_t i = 0; i < 128; ++i) ASSERT_NEAR(double(x[i]), want[i], 1e-5) << i;
  }
}

TEST(Hadamard, BasisVectorGivesScaledMatrixColumn) {
  // H e_j is column j: entries ±128^-0.5 with sign (-1)^popcount(i & j).
  const float s = float(1.0 / std::sqrt(128.0));
  for (size_t j : {0u, 1u, 37u, 127u}) {
    std::vector<float> x(128, 0.0f);
    x[j] = 1.0f;
    hadamard_transform(x.data(), 128);
    for (size_t i = 0; i < 128; ++i) {
      ASSERT_EQ(x[i], std::popcount(i & j) % 2 == 0 ? s : -s) << i << "," << j;
    }
  }
}

TEST(Hadamard, IntegerInputsGiveExactlyScaledSums) {
  // Small integers make every butterfly sum exact, so the only rounding is the final multiply
  // by fp32(128^-0.5) (bits 0x3db504f3).
  test::Lcg rng(5);
  std::vector<float> x(128);
  for (float& v : x) v = float(int(rng.next() % 201) - 100);
  std::vector<double> sums(128, 0.0);
  for (size_t i = 0; i < 128; ++i) {
    for (size_t j = 0; j < 128; ++j) sums[i] += (std::popcount(i & j) % 2 == 0 ? 1 : -1) * x[j];
  }
  const float scale = test::float_of(0x3db504f3u);
  EXPECT_EQ(double(scale), double(float(1.0 / std::sqrt(128.0))));
  hadamard_transform(x.data(), 128);
  for (size_t i = 0; i < 128; ++i) ASSERT_EQ(x[i], float(sums[i]) * scale) << i;
}

TEST(Hadamard, SmallSizesByHand) {
  float one[1] = {3.5f};
  hadamard_transform(one, 1);
  EXPECT_EQ(one[0], 3.5f);

  // n = 4: rows (1,1,1,1), (1,-1,1,-1), (1,1,-1,-1), (1,-1,-1,1), scale 1/2.
  // x = (1,2,3,4) -> (10, -2, -4, 0) / 2 = (5, -1, -2, 0).
  float four[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  hadamard_transform(four, 4);
  EXPECT_EQ(four[0], 5.0f);
  EXPECT_EQ(four[1], -1.0f);
  EXPECT_EQ(four[2], -2.0f);
  EXPECT_EQ(four[3], 0.0f);

  // n = 2: (a, b) -> ((a + b), (a - b)) / sqrt(2).
  float two[2] = {3.0f, 1.0f};
  hadamard_transform(two, 2);
  EXPECT_NEAR(two[0], 4.0 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(two[1], 2.0 / std::sqrt(2.0), 1e-6);
}

TEST(Hadamard, MatchesNaiveProductForAllPowersOfTwoUpTo1024) {
  for (size_t n = 1; n <= 1024; n *= 2) {
    std::vector<float> x = random_vector(n, 100 + n);
    const std::vector<double> want = naive_hadamard(x);
    hadamard_transform(x.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_NEAR(double(x[i]), want[i], 2e-5) << n << ":" << i;
  }
}

TEST(Hadamard, ApplyingTwiceReturnsInput) {
  const std::vector<float> x = random_vector(128, 7);
  std::vector<float> y = x;
  hadamard_transform(y.data(), 128);
  hadamard_transform(y.data(), 128);
  for (size_t i = 0; i < 128; ++i) ASSERT_NEAR(y[i], x[i], 1e-6) << i;
}

TEST(Hadamard, PreservesNorm) {
  const std::vector<float> x = random_vector(128, 8);
  std::vector<float> y = x;
  hadamard_transform(y.data(), 128);
  double before = 0, after = 0;
  for (size_t i = 0; i < 128; ++i) {
    before += double(x[i]) * x[i];
    after += double(y[i]) * y[i];
  }
  EXPECT_NEAR(after, before, 1e-5 * before);
}

TEST(Hadamard, RejectsNonPowerOfTwoLength) {
  for (size_t n : {0u, 3u, 6u, 100u, 127u, 129u, 192u}) {
    std::vector<float> x(n + 1, 1.0f);
    const std::vector<float> before = x;
    try {
      hadamard_transform(x.data(), n);
      ADD_FAILURE() << "no error for n = " << n;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
    }
    EXPECT_EQ(x, before) << "input modified for n = " << n;
  }
}

}  // namespace
}  // namespace dsv4
