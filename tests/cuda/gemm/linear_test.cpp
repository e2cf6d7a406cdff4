// The CUDA linear layers against cpu::linear / cpu::grouped_linear (official numerics) on
// fresh random weights and inputs, outputs poisoned before each run. Bound: 1e-5 relative on
// the fp32 result (same math, only the order of the fp32 additions differs), 5e-4 where FP8
// weights run on the FP8 tensor cores (their accumulation inside a 128-input block is not exact
// fp32, as in DeepSeek's reference GEMM); the bf16 output must be exactly the bf16 rounding of
// the fp32 output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/formats.h"
#include "cpu/linear.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/linear.h"
#include "cuda/kernels/gemm/linear_wgmma.h"
#include "cuda/kernels/gemm/plain_gemm.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/runtime/device.h"
#include "gemm/gemm_test_util.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

using test::fresh_seed;
using test::relative_error;

constexpr double kBound = 1e-5;
// The FP8 MMA chain keeps about 14 bits when adding products of different magnitude (as in
// DeepSeek's reference GEMM on Hopper): 2.6-3.7e-4 measured on these shapes.
constexpr double kTensorCoreBound = 5e-4;
const std::vector<int64_t> kTokens = {1, 3, 16, 67};
// Around the tensor-core kernels' token tiles: 16 tokens up to 16, 128 from 17.
const std::vector<int64_t> kTensorCoreTokens = {1, 16, 17, 128, 129, 300};

// kScaled: the CUDA-core block-scaled GEMM; kTensorCores / kTensorCoresUnsplit: the FP8
// tensor-core kernel (scaled_gemm) or, for bf16 weights, bf16_gemm on x rounded to bf16, with
// / without scratch to split the inputs over.
enum class Path { kDispatch, kScaled, kTensorCores, kTensorCoresUnsplit, kPlain };

struct Result {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
};

// Runs one GPU linear: `path` picks the entry point (the dispatcher, the FP8/FP4 GEMM after
// an explicit quantization, or the plain GEMM), `groups` > 0 the grouped GEMM.
Result run_gpu(const std::vector<float>& x, int64_t m, const LinearWeight& w, Path path,
               int64_t groups = 0) {
  const DeviceLinear dw = upload_linear(w);
  const DeviceBuffer<float> dx(x);
  auto y = test::poisoned<float>(size_t(m * w.rows));
  auto yb = test::poisoned<uint16_t>(size_t(m * w.rows));
  const int64_t k = groups > 0 ? groups * w.cols : w.cols;
  auto codes = test::poisoned<uint8_t>(size_t(m * k));
  auto scales = test::poisoned<float>(size_t(m * k / 128 + 1));
  const LinearOutput out{y.data(), yb.data()};
  DeviceBuffer<float> split_sums(size_t(std::max<int64_t>(1, scaled_gemm_split_floats())));
  if (groups > 0 && path == Path::kPlain) {
    grouped_gemm(dx.data(), m, groups, dw.view(), out, nullptr);
  } else if (path == Path::kDispatch) {
    linear(dx.data(), m, dw.view(), {codes.data(), scales.data()}, out, nullptr);
  } else if (path == Path::kScaled) {
    quantize_activations_fp8(dx.data(), m, w.cols, codes.data(), scales.data(), nullptr);
    scaled_gemm(codes.data(), scales.data(), m, dw.view(), out, nullptr, {}, false);
  } else if (path == Path::kTensorCores || path == Path::kTensorCoresUnsplit) {
    const SplitSums split = path == Path::kTensorCores
                                ? SplitSums{split_sums.data(), scaled_gemm_split_floats()}
                                : SplitSums{};
    if (w.format == WeightFormat::kBF16) {
      std::vector<uint16_t> bits(x.size());
      for (size_t i = 0; i < x.size(); ++i) bits[i] = float_to_bf16(x[i]);
      const DeviceBuffer<uint16_t> xb(bits);
      bf16_gemm(xb.data(), m, std::max<int64_t>(groups, 1), dw.view(), out, nullptr, split);
      DSV4_CUDA_CHECK(cudaDeviceSynchronize());
    } else {
      quantize_activations_fp8(dx.data(), m, w.cols, codes.data(), scales.data(), nullptr);
      scaled_gemm(codes.data(), scales.data(), m, dw.view(), out, nullptr, split);
    }
  } else {
    plain_gemm(dx.data(), m, dw.view(), out, nullptr);
  }
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  return {y.download(), yb.download()};
}

void expect_close(const Result& got, const std::vector<float>& want, const std::string& what,
                  double bound = kBound) {
  const double err = relative_error(got.f32, want);
  std::printf("  %-44s rel err %.3g\n", what.c_str(), err);
  EXPECT_LT(err, bound) << what;
  size_t mismatched = 0;
  for (size_t i = 0; i < got.f32.size(); ++i)
    mismatched += got.bf16[i] != float_to_bf16(got.f32[i]);
  EXPECT_EQ(mismatched, 0u) << what << ": bf16 output is not the rounded fp32 output";
}

std::string name(const LinearWeight& w, int64_t m) {
  return std::string(weight_format_name(w.format)).substr(0, 6) + " " + std::to_string(w.rows) +
         "x" + std::to_string(w.cols) + " m=" + std::to_string(m);
}

// Every token count against cpu::linear.
void check_linear(std::mt19937_64& rng, const LinearWeight& w, Path path,
                  Numerics numerics = Numerics::kOfficial,
                  const std::vector<int64_t>& tokens = kTokens, double bound = kBound) {
  for (const int64_t m : tokens) {
    const std::vector<float> x = test::random_floats(rng, size_t(m * w.cols));
    std::vector<float> want(size_t(m * w.rows));
    cpu::linear(x.data(), m, w, numerics, want.data());
    expect_close(run_gpu(x, m, w, path), want, name(w, m), bound);
  }
}

// The FP8 tensor-core kernel at its token counts, where the device has it.
void check_tensor_cores(std::mt19937_64& rng, const LinearWeight& w, Path path) {
  check_linear(rng, w, path, Numerics::kOfficial, kTensorCoreTokens, kTensorCoreBound);
}

TEST(Fp8Gemm, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_linear(rng, test::fp8_weight(rng, 512, 384), Path::kScaled);
  check_linear(rng, test::fp8_weight(rng, 1024, 4096), Path::kScaled);      // Flash wq_a
  check_linear(rng, test::fp8_weight(rng, 4096, 1024), Path::kScaled);      // Flash wq_b-like
  check_linear(rng, test::fp8_weight(rng, 200, 384), Path::kScaled);        // partial row block
  check_linear(rng, test::fp8_weight(rng, 200, 256, 1.3f), Path::kScaled);  // non-pow2 scales
}

// Tiles of 128 weight rows and 128 tokens, a partial last one of each, inputs split over
// the SMs (or not, without scratch, from 17 tokens): Flash wq_a (32 stages, 8 row blocks: split
// 16 ways where the device holds a 16-CTA cluster), wq_b-like (32 row blocks), a narrow weight
// of three stages, non-power-of-two scales.
TEST(Fp8GemmOnTensorCores, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_tensor_cores(rng, test::fp8_weight(rng, 1024, 4096), Path::kTensorCores);
  check_tensor_cores(rng, test::fp8_weight(rng, 1024, 4096), Path::kTensorCoresUnsplit);
  check_tensor_cores(rng, test::fp8_weight(rng, 4096, 1024), Path::kTensorCores);
  check_tensor_cores(rng, test::fp8_weight(rng, 200, 384), Path::kTensorCores);
  check_tensor_cores(rng, test::fp8_weight(rng, 200, 256, 1.3f), Path::kTensorCores);
  // A prefill chunk: eight token tiles, no split.
  check_linear(rng, test::fp8_weight(rng, 384, 1024), Path::kTensorCores, Numerics::kOfficial,
               {1000}, kTensorCoreBound);
}

TEST(Fp4Gemm, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_linear(rng, test::fp4_weight(rng, 512, 384), Path::kScaled);
  check_linear(rng, test::fp4_weight(rng, 2048, 4096), Path::kScaled);  // Flash expert w1/w3
  check_linear(rng, test::fp4_weight(rng, 4096, 2048), Path::kScaled);  // Flash expert w2
  check_linear(rng, test::fp4_weight(rng, 203, 256), Path::kScaled);
  check_linear(rng, test::fp4_weight(rng, 200, 256, 1.3f), Path::kScaled);  // f32 scales
}

// A token's output has the same bits alone (a 16-token tile, the inputs split over a cluster
// of CTAs) as among 300 tokens (three 128-token tiles, the inputs split over the SMs, or added
// in the same split order by one CTA without scratch).
void expect_batch_invariance(std::mt19937_64& rng, const LinearWeight& w) {
  const int64_t m = 300;
  const std::vector<float> x = test::random_floats(rng, size_t(m * w.cols));
  for (const Path path : {Path::kTensorCores, Path::kTensorCoresUnsplit}) {
    const Result batch = run_gpu(x, m, w, path);
    for (const int64_t t : {int64_t(0), int64_t(137), m - 1}) {
      const std::vector<float> one(x.begin() + t * w.cols, x.begin() + (t + 1) * w.cols);
      const Result alone = run_gpu(one, 1, w, Path::kTensorCores);
      EXPECT_EQ(std::memcmp(alone.f32.data(), batch.f32.data() + t * w.rows, w.rows * 4), 0)
          << weight_format_name(w.format) << " token " << t
          << (path == Path::kTensorCores ? ", batch split" : ", batch not split");
    }
  }
}

TEST(Fp8GemmOnTensorCores, TokenOutputsDoNotDependOnTheBatch) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  expect_batch_invariance(rng, test::fp8_weight(rng, 1024, 4096));
}

// bf16 weights and activations on the bf16 tensor cores: exact products, fp32 accumulation,
// so the CUDA-core bound holds. An LM-head-like and a compressor-like shape, a partial row
// block, 64 rows (as the indexer's weights_proj), with and without splits.
TEST(Bf16GemmOnTensorCores, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (const auto& [rows, cols] : {std::pair{1024, 4096}, {4096, 1024}, {200, 384}, {64, 4096}}) {
    const LinearWeight w = test::plain_weight(rng, rows, cols, WeightFormat::kBF16);
    for (const Path path : {Path::kTensorCores, Path::kTensorCoresUnsplit}) {
      std::vector<int64_t> tokens = kTensorCoreTokens;
      if (rows == 200) tokens.push_back(1000);  // a prefill chunk: eight token tiles
      for (const int64_t m : tokens) {
        std::vector<float> x = test::random_floats(rng, size_t(m * w.cols));
        for (float& v : x) v = round_bf16(v);
        std::vector<float> want(size_t(m * w.rows));
        cpu::linear(x.data(), m, w, Numerics::kOfficial, want.data());
        expect_close(run_gpu(x, m, w, path), want, name(w, m));
      }
    }
  }
}

// Four input groups of 128 rows each, as wo_a's groups.
TEST(Bf16GemmOnTensorCores, GroupedMatchesCpuGroupedLinear) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t groups = 4;
  const LinearWeight w = test::plain_weight(rng, 512, 256, WeightFormat::kBF16);
  for (const int64_t m : kTensorCoreTokens) {
    std::vector<float> x = test::random_floats(rng, size_t(m * groups * w.cols));
    for (float& v : x) v = round_bf16(v);
    std::vector<float> want(size_t(m * w.rows));
    cpu::grouped_linear(x.data(), m, groups, w, want.data());
    expect_close(run_gpu(x, m, w, Path::kTensorCores, groups), want, "grouped " + name(w, m));
  }
}

TEST(Bf16GemmOnTensorCores, TokenOutputsDoNotDependOnTheBatch) {
  DSV4_REQUIRE_GPU();
  if (!sm90_kernels_available()) GTEST_SKIP() << "no sm_90 linear kernel";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  expect_batch_invariance(rng, test::plain_weight(rng, 1024, 4096, WeightFormat::kBF16));
}

TEST(NvFp4Gemm, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_linear(rng, test::nvfp4_weight(rng, 512, 384), Path::kScaled);
  check_linear(rng, test::nvfp4_weight(rng, 2048, 4096), Path::kScaled);  // Flash expert w1/w3
  check_linear(rng, test::nvfp4_weight(rng, 203, 256), Path::kScaled);
}

TEST(PlainGemm, MatchesCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (const WeightFormat f : {WeightFormat::kBF16, WeightFormat::kF32}) {
    check_linear(rng, test::plain_weight(rng, 512, 384, f), Path::kPlain);
    check_linear(rng, test::plain_weight(rng, 256, 4096, f), Path::kPlain);  // MoE gate
    check_linear(rng, test::plain_weight(rng, 203, 136, f), Path::kPlain);
  }
}

TEST(PlainGemm, QuantizedWeightsGiveTheExactDequantizedProduct) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  check_linear(rng, test::fp8_weight(rng, 200, 384), Path::kPlain, Numerics::kFp32);
  check_linear(rng, test::fp4_weight(rng, 200, 384), Path::kPlain, Numerics::kFp32);
  check_linear(rng, test::nvfp4_weight(rng, 200, 384), Path::kPlain, Numerics::kFp32);
}

TEST(Linear, DispatchesEveryFormatLikeCpuLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  // FP8 weights meet the FP8 tensor cores at every token count on sm_90.
  check_linear(rng, test::fp8_weight(rng, 384, 512), Path::kDispatch, Numerics::kOfficial, kTokens,
               sm90_kernels_available() ? kTensorCoreBound : kBound);
  check_linear(rng, test::fp4_weight(rng, 384, 512), Path::kDispatch);
  check_linear(rng, test::nvfp4_weight(rng, 384, 512), Path::kDispatch);
  check_linear(rng, test::plain_weight(rng, 384, 512, WeightFormat::kBF16), Path::kDispatch);
  check_linear(rng, test::plain_weight(rng, 384, 512, WeightFormat::kF32), Path::kDispatch);
}

TEST(GroupedGemm, MatchesCpuGroupedLinear) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  struct Case {
    LinearWeight w;
    int64_t groups;
  };
  const Case cases[] = {
      {test::plain_weight(rng, 8 * 128, 512, WeightFormat::kBF16), 8},  // wo_a-like, bf16
      {test::fp8_weight(rng, 8 * 64, 256), 8},                          // wo_a kept in FP8
      {test::plain_weight(rng, 4 * 6, 64, WeightFormat::kBF16), 4},     // 6 rows a group
      {test::plain_weight(rng, 3 * 10, 32, WeightFormat::kF32), 3},
  };
  for (const Case& c : cases) {
    for (const int64_t m : kTokens) {
      const std::vector<float> x = test::random_floats(rng, size_t(m * c.groups * c.w.cols));
      std::vector<float> want(size_t(m * c.w.rows));
      cpu::grouped_linear(x.data(), m, c.groups, c.w, want.data());
      expect_close(run_gpu(x, m, c.w, Path::kPlain, c.groups), want,
                   "grouped " + std::to_string(c.groups) + " " + name(c.w, m));
    }
  }
}

TEST(UploadLinear, KeepsCheckpointFormats) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  const DeviceLinear fp8 = upload_linear(test::fp8_weight(rng, 200, 256));
  EXPECT_EQ(fp8.values.size(), 200u * 256u);
  EXPECT_EQ(fp8.scale_storage, ScaleStorage::kF32);
  EXPECT_EQ(fp8.scales.size(), 2u * 2u * 4u);
  const DeviceLinear fp4 = upload_linear(test::fp4_weight(rng, 64, 256));
  EXPECT_EQ(fp4.values.size(), 64u * 128u);
  EXPECT_EQ(fp4.scale_storage, ScaleStorage::kUe8m0);
  EXPECT_EQ(fp4.scales.size(), 64u * 8u);
  EXPECT_EQ(upload_linear(test::fp4_weight(rng, 64, 256, 1.3f)).scale_storage, ScaleStorage::kF32);
  EXPECT_EQ(upload_linear(test::plain_weight(rng, 8, 16, WeightFormat::kBF16)).values.size(), 256u);
  const DeviceLinear nvfp4 = upload_linear(test::nvfp4_weight(rng, 64, 256));
  EXPECT_EQ(nvfp4.values.size(), 64u * 128u);
  EXPECT_EQ(nvfp4.scale_storage, ScaleStorage::kE4m3);
  EXPECT_EQ(nvfp4.scales.size(), 64u * 16u);
  EXPECT_EQ(nvfp4.row_scales.size(), 64u);
  LinearWeight scale_not_e4m3 = test::nvfp4_weight(rng, 8, 128);
  scale_not_e4m3.scales[3] = 0.1f;
  EXPECT_THROW(upload_linear(scale_not_e4m3), Error);
  LinearWeight not_e4m3 = test::fp8_weight(rng, 8, 128);
  not_e4m3.values[5] = 0.1f;
  EXPECT_THROW(upload_linear(not_e4m3), Error);
}

// The shared expert's w1 over its w3 on the device: the same bytes as the weight stacked on the
// host and uploaded whole; FP8 tops that end inside a 128-row scale block are refused.
TEST(Linear, StackedDeviceWeightsHoldTheTopRowsThenTheBottomOnes) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed());
  const LinearWeight top = test::fp8_weight(rng, 256, 384),
                     bottom = test::fp8_weight(rng, 200, 384);
  LinearWeight both = top;
  both.rows += bottom.rows;
  both.values.insert(both.values.end(), bottom.values.begin(), bottom.values.end());
  both.scales.insert(both.scales.end(), bottom.scales.begin(), bottom.scales.end());
  const DeviceLinear got = stack_linears(upload_linear(top), upload_linear(bottom));
  const DeviceLinear want = upload_linear(both);
  EXPECT_EQ(got.rows, 456);
  EXPECT_EQ(got.cols, 384);
  EXPECT_EQ(got.values.download(), want.values.download());
  EXPECT_EQ(got.scales.download(), want.scales.download());
  EXPECT_THROW(stack_linears(upload_linear(test::fp8_weight(rng, 100, 384)), upload_linear(top)),
               Error);
}

// Host-only (no GPU needed): FP4 scale storage and the stacking of an expert's w1 over its w3.

std::vector<float> float_scales(const EncodedLinear& e) {
  std::vector<float> out(e.scales.size() / sizeof(float));
  std::memcpy(out.data(), e.scales.data(), e.scales.size());
  return out;
}

// The kernels decode a ue8m0 byte with a shift, which is exact for codes 1..254: a weight with
// a 2^-127 scale (code 0, a float subnormal) keeps float scales instead.
TEST(EncodeLinear, Fp4ScalesArePackedAsUe8m0OnlyAboveTheSubnormal) {
  std::mt19937_64 rng(fresh_seed());
  LinearWeight w = test::fp4_weight(rng, 4, 64);
  EXPECT_EQ(encode_linear(w).scale_storage, ScaleStorage::kUe8m0);
  w.scales[1] = 0x1p-126f;
  EXPECT_EQ(encode_linear(w).scale_storage, ScaleStorage::kUe8m0);
  w.scales[1] = 0x1p-127f;
  const EncodedLinear subnormal = encode_linear(w);
  EXPECT_EQ(subnormal.scale_storage, ScaleStorage::kF32);
  EXPECT_EQ(float_scales(subnormal), w.scales);
}

TEST(StackEncoded, Fp4PowerOfTwoAndOtherScalesStackAsFloatScales) {
  std::mt19937_64 rng(fresh_seed());
  const LinearWeight top = test::fp4_weight(rng, 8, 64),
                     bottom = test::fp4_weight(rng, 8, 64, 1.3f);
  const EncodedLinear stacked =
      stack_encoded(encode_linear(top), 8, encode_linear(bottom), 64, WeightFormat::kFp4);
  EXPECT_EQ(stacked.scale_storage, ScaleStorage::kF32);
  std::vector<float> want = top.scales;
  want.insert(want.end(), bottom.scales.begin(), bottom.scales.end());
  EXPECT_EQ(float_scales(stacked), want);
  EXPECT_EQ(stacked.values.size(), 2u * 8u * 32u);
}

TEST(StackEncoded, NvFp4RowsKeepTheirTensorsGlobalScale) {
  std::mt19937_64 rng(fresh_seed());
  LinearWeight top = test::nvfp4_weight(rng, 4, 64), bottom = test::nvfp4_weight(rng, 4, 64);
  top.global_scale = 0.25f;
  bottom.global_scale = 0.75f;
  const EncodedLinear stacked =
      stack_encoded(encode_linear(top), 4, encode_linear(bottom), 64, WeightFormat::kNvFp4);
  EXPECT_EQ(stacked.row_scales,
            std::vector<float>({0.25f, 0.25f, 0.25f, 0.25f, 0.75f, 0.75f, 0.75f, 0.75f}));
  EXPECT_EQ(stacked.scale_storage, ScaleStorage::kE4m3);
  EXPECT_EQ(stacked.scales.size(), 2u * 4u * 4u);
}

}  // namespace
}  // namespace dsv4::cuda
