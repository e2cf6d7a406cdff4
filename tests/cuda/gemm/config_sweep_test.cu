// Configuration sweep of the weight-streaming kernel (rows per warp R, chunks in flight U,
// register double buffering) at decode sizes: timing printout only, random codes.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/kernels/gemm/weight_stream.cuh"
#include "gemm/timing_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

using namespace gemm_detail;

DeviceLinear random_device_linear(WeightFormat format, int64_t rows, int64_t cols) {
  DeviceLinear w;
  w.rows = rows;
  w.cols = cols;
  w.format = format;
  const int64_t bytes = format == WeightFormat::kFp8    ? rows * cols
                        : format == WeightFormat::kFp4  ? rows * cols / 2
                        : format == WeightFormat::kBF16 ? rows * cols * 2
                                                        : rows * cols * 4;
  std::vector<uint8_t> values(static_cast<size_t>(bytes));
  std::mt19937 rng(7);
  for (uint8_t& v : values) v = uint8_t(rng() & 0x3f);  // small positive codes, no NaN
  w.values = DeviceBuffer<uint8_t>(values);
  if (format == WeightFormat::kFp8) {
    std::vector<float> s(static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)), 1.0f);
    std::vector<uint8_t> b(s.size() * 4);
    std::memcpy(b.data(), s.data(), b.size());
    w.scales = DeviceBuffer<uint8_t>(b);
    w.scale_storage = ScaleStorage::kF32;
  } else if (format == WeightFormat::kFp4) {
    w.scales =
        DeviceBuffer<uint8_t>(std::vector<uint8_t>(static_cast<size_t>(rows * cols / 32), 127));
    w.scale_storage = ScaleStorage::kUe8m0;
  }
  return w;
}

struct Bench {
  const DeviceLinear& w;
  test::Rotation rot;
  int64_t m;
  DeviceBuffer<float> x;
  DeviceBuffer<uint8_t> codes;
  DeviceBuffer<float> scales;
  DeviceBuffer<uint16_t> y;

  Bench(const DeviceLinear& weight, int64_t tokens)
      : w(weight),
        rot(test::rotate(weight)),
        m(tokens),
        x(std::vector<float>(size_t(tokens * weight.cols), 0.5f)),
        codes(std::vector<uint8_t>(size_t(tokens * weight.cols), 0x38)),
        scales(std::vector<float>(size_t(tokens * weight.cols / 128), 1.0f)),
        y(size_t(tokens * weight.rows)) {}

  template <class W, class A, int R, int MT, int U, bool kPrefetch>
  void run(const char* label) {
    cudaFuncAttributes attr{};
    DSV4_CUDA_CHECK(cudaFuncGetAttributes(&attr, weight_stream_kernel<W, A, R, MT, U, kPrefetch>));
    const float ms = test::median_ms(int(rot.views.size()), [&](int i, cudaStream_t s) {
      StreamParams p = stream_params(rot.views[size_t(i)], {nullptr, y.data()}, m);
      if constexpr (std::is_same_v<A, Fp8Activations>) {
        p.x = codes.data();
        p.x_scales = scales.data();
      } else {
        p.x = x.data();
      }
      p.x_row_stride = w.cols;
      p.rows_per_group = w.rows;
      launch_tile<W, A, R, MT, U, kPrefetch>(p, s);
    });
    std::printf("  %-14s m=%-2lld R=%d U=%d prefetch=%d regs=%3d  %7.2f us %7.1f GB/s\n", label,
                static_cast<long long>(m), R, U, int(kPrefetch), attr.numRegs, ms * 1e3,
                double(w.bytes()) / 1e9 / (ms * 1e-3));
  }
};

TEST(GemmConfigSweep, DecodeSizes) {
  DSV4_REQUIRE_GPU();
  const DeviceLinear fp8 = random_device_linear(WeightFormat::kFp8, 4096, 4096);
  {
    Bench b(fp8, 1);
    const char* l = "fp8 4096x4096";
    b.run<Fp8Weight, Fp8Activations, 4, 1, 2, false>(l);
    b.run<Fp8Weight, Fp8Activations, 2, 1, 2, true>(l);  // tuned
    b.run<Fp8Weight, Fp8Activations, 2, 1, 4, true>(l);
    b.run<Fp8Weight, Fp8Activations, 1, 1, 4, true>(l);
    b.run<Fp8Weight, Fp8Activations, 4, 1, 1, true>(l);
  }
  {
    Bench b(fp8, 4);
    const char* l = "fp8 4096x4096";
    b.run<Fp8Weight, Fp8Activations, 4, 4, 2, true>(l);  // tuned
    b.run<Fp8Weight, Fp8Activations, 4, 4, 1, true>(l);
    b.run<Fp8Weight, Fp8Activations, 2, 4, 2, true>(l);
  }
  const DeviceLinear fp4 = random_device_linear(WeightFormat::kFp4, 2048, 4096);
  {
    Bench b(fp4, 1);
    const char* l = "fp4 2048x4096";
    b.run<Fp4Weight, Fp8Activations, 2, 1, 4, false>(l);
    b.run<Fp4Weight, Fp8Activations, 1, 1, 2, true>(l);  // tuned
    b.run<Fp4Weight, Fp8Activations, 1, 1, 4, true>(l);
    b.run<Fp4Weight, Fp8Activations, 2, 1, 2, true>(l);
    b.run<Fp4Weight, Fp8Activations, 1, 1, 1, true>(l);
  }
  {
    Bench b(fp4, 4);
    const char* l = "fp4 2048x4096";
    b.run<Fp4Weight, Fp8Activations, 1, 4, 4, false>(l);
    b.run<Fp4Weight, Fp8Activations, 1, 4, 2, true>(l);  // tuned
    b.run<Fp4Weight, Fp8Activations, 2, 4, 2, true>(l);
  }
  const DeviceLinear bf16 = random_device_linear(WeightFormat::kBF16, 4096, 4096);
  {
    Bench b(bf16, 1);
    const char* l = "bf16 4096x4096";
    b.run<Bf16Weight, F32Activations, 4, 1, 2, true>(l);  // tuned
    b.run<Bf16Weight, F32Activations, 4, 1, 4, true>(l);
    b.run<Bf16Weight, F32Activations, 2, 1, 2, true>(l);
  }
}

}  // namespace
}  // namespace dsv4::cuda
