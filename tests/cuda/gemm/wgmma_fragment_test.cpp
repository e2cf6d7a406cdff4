// The register-A layout of the FP8 warpgroup MMA (wgmma_m64n8k32_e4m3_rs) that a decode expert
// kernel would feed with FP4 codes converted in registers: one m64n8k32 product of random e4m3
// codes against the host's, exactly. The codes are ±1, ±1.5, ±2 and ±3, so every sum needs only
// 11 significant bits: the tensor cores add FP8 products with fewer bits than fp32 (codes of
// 2^-3 .. 2^3 came out ~2e-4 off, seen on an H200), which a layout check must not depend on.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/formats.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/device_buffer.h"
#include "gemm/wgmma_fragment_kernels.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

constexpr int kRows = kFragmentRows, kTokens = kFragmentTokens, kInputs = kFragmentInputs;

TEST(WgmmaFragments, E4m3RegisterAMatchesTheHostProduct) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90a kernels on this GPU";
  std::mt19937 rng(std::random_device{}());
  // e4m3: sign, exponent field 7 or 8 (2^0, 2^1), mantissa field 0 or 4 (1.0, 1.5).
  std::uniform_int_distribution<int> bit(0, 1);
  const auto random_codes = [&](size_t n) {
    std::vector<uint8_t> codes(n);
    for (uint8_t& c : codes) c = uint8_t(bit(rng) << 7 | (7 + bit(rng)) << 3 | 4 * bit(rng));
    return codes;
  };
  const std::vector<uint8_t> a = random_codes(kRows * kInputs), b = random_codes(kTokens * kInputs);
  DeviceBuffer<uint8_t> d_a(a), d_b(b);
  DeviceBuffer<float> d_d(std::vector<float>(kRows * kTokens, -12345.0f));
  multiply_m64n8k32_e4m3(d_a.data(), d_b.data(), d_d.data());
  const std::vector<float> got = d_d.download();
  for (int r = 0; r < kRows; ++r) {
    for (int t = 0; t < kTokens; ++t) {
      double want = 0.0;
      for (int k = 0; k < kInputs; ++k) {
        want += double(e4m3_to_float(a[size_t(r * kInputs + k)])) *
                double(e4m3_to_float(b[size_t(t * kInputs + k)]));
      }
      ASSERT_EQ(got[size_t(r * kTokens + t)], float(want)) << "row " << r << ", token " << t;
    }
  }
}

}  // namespace
}  // namespace dsv4::cuda
