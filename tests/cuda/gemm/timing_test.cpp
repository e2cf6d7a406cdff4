// Decode-size timing printout (no assertions): m = 1, 4, 16 on FP8 weights of 4096, 1024 and
// 512 rows of 4096 inputs, a 2048x4096 FP4 and a 4096x4096 bf16 weight, CUDA events, median of
// 20 launches, the weight copies rotated over > 2x the L2 so every launch streams from HBM.
// GB/s counts weight codes + scales. "gemm" is scaled_gemm() with split scratch (as the model
// runs it), "linear()" the dispatcher, which has none.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/plain_gemm.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/runtime/device.h"
#include "gemm/gemm_test_util.h"
#include "gemm/timing_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

using test::l2_bytes;
using test::median_ms;
using test::rotate;

void time_weight(const LinearWeight& host, const char* label) {
  const DeviceLinear w = upload_linear(host);
  const test::Rotation rot = rotate(w);
  const int copies = int(rot.views.size());
  const bool quantized = host.format == WeightFormat::kFp8 || host.format == WeightFormat::kFp4;
  std::mt19937_64 rng(1);
  for (const int64_t m : {int64_t(1), int64_t(4), int64_t(16)}) {
    const DeviceBuffer<float> x(test::random_floats(rng, size_t(m * host.cols)));
    DeviceBuffer<uint8_t> codes(size_t(m * host.cols));
    DeviceBuffer<float> scales(size_t(m * host.cols / 128));
    DeviceBuffer<uint16_t> y(size_t(m * host.rows));
    const LinearOutput out{nullptr, y.data()};
    const Fp8ActivationBuffer scratch{codes.data(), scales.data()};
    if (quantized)
      quantize_activations_fp8(x.data(), m, host.cols, codes.data(), scales.data(), nullptr);
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
    DeviceBuffer<float> split_sums(size_t(std::max<int64_t>(1, scaled_gemm_split_floats())));
    const SplitSums split{split_sums.data(), scaled_gemm_split_floats()};
    const float gemm = median_ms(copies, [&](int i, cudaStream_t s) {
      if (quantized) {
        scaled_gemm(codes.data(), scales.data(), m, rot.views[size_t(i)], out, s, split);
      } else {
        plain_gemm(x.data(), m, rot.views[size_t(i)], out, s);
      }
    });
    const float both = median_ms(copies, [&](int i, cudaStream_t s) {
      linear(x.data(), m, rot.views[size_t(i)], scratch, out, s);
    });
    const double gb = double(w.bytes()) / 1e9;
    std::printf(
        "  %-16s m=%-2lld gemm %7.2f us %7.1f GB/s | linear() %7.2f us %7.1f GB/s (%d copies)\n",
        label, static_cast<long long>(m), gemm * 1e3, gb / (gemm * 1e-3), both * 1e3,
        gb / (both * 1e-3), copies);
  }
}

TEST(GemmTiming, DecodeSizes) {
  DSV4_REQUIRE_GPU();
  std::printf("  device: %s, L2 %zu MB\n", device_description(0).c_str(), l2_bytes() >> 20);
  {  // Ceiling for context: a device-to-device copy (read + write bytes).
    const size_t bytes = size_t(1) << 30;
    DeviceBuffer<uint8_t> a(bytes), b(bytes);
    const float ms = median_ms(1, [&](int, cudaStream_t s) {
      DSV4_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s));
    });
    std::printf("  d2d copy 1 GiB: %.1f GB/s (read + write)\n",
                2.0 * double(bytes) / 1e9 / (ms * 1e-3));
  }
  std::mt19937_64 rng(2);
  time_weight(test::fp8_weight(rng, 4096, 4096), "fp8 4096x4096");
  time_weight(test::fp8_weight(rng, 1024, 4096), "fp8 1024x4096");  // Flash wq_a
  time_weight(test::fp8_weight(rng, 512, 4096), "fp8 512x4096");    // Flash wkv
  time_weight(test::fp4_weight(rng, 2048, 4096), "fp4 2048x4096");
  time_weight(test::plain_weight(rng, 4096, 4096, WeightFormat::kBF16), "bf16 4096x4096");
}

// Prefill-size printout (no assertions): 4096 tokens through a 4096x4096 FP8 and bf16 weight
// on the tensor-core linear kernel, TFLOP/s of 2·m·rows·cols (the H200's dense peaks: about
// 1979 FP8 and 989 bf16 TFLOP/s by specification).
TEST(GemmTiming, PrefillSizes) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  std::mt19937_64 rng(3);
  const int64_t m = 4096;
  for (const WeightFormat format : {WeightFormat::kFp8, WeightFormat::kBF16}) {
    const LinearWeight host = format == WeightFormat::kFp8
                                  ? test::fp8_weight(rng, 4096, 4096)
                                  : test::plain_weight(rng, 4096, 4096, WeightFormat::kBF16);
    const DeviceLinear w = upload_linear(host);
    DeviceBuffer<uint8_t> codes(size_t(m * host.cols));
    DeviceBuffer<float> scales(size_t(m * host.cols / 128));
    DeviceBuffer<uint16_t> x(size_t(m * host.cols)), y(size_t(m * host.rows));
    DSV4_CUDA_CHECK(cudaMemset(codes.data(), 0x38, codes.size()));  // 1.0 in e4m3
    DSV4_CUDA_CHECK(cudaMemset(scales.data(), 0, scales.size() * sizeof(float)));
    DSV4_CUDA_CHECK(cudaMemset(x.data(), 0, x.size() * sizeof(uint16_t)));
    const float ms = median_ms(1, [&](int, cudaStream_t s) {
      if (format == WeightFormat::kFp8) {
        scaled_gemm(codes.data(), scales.data(), m, w.view(), {nullptr, y.data()}, s);
      } else {
        bf16_gemm(x.data(), m, 1, w.view(), {nullptr, y.data()}, s);
      }
    });
    std::printf("  %s 4096x4096 m=%lld: %.1f us, %.0f TFLOP/s\n", weight_format_name(format),
                static_cast<long long>(m), ms * 1e3,
                2.0 * double(m) * double(host.rows * host.cols) / (ms * 1e-3) / 1e12);
  }
}

}  // namespace
}  // namespace dsv4::cuda
