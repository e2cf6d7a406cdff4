// Embedding gather, RMSNorm and the per-head query norm against the CPU backend.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cpu/norms.h"
#include "cuda/kernels/norm_rope_mhc/embedding.h"
#include "cuda/kernels/norm_rope_mhc/rms_norm.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"
#include "model/weights.h"

namespace dsv4::cuda {
namespace {

void check_embedding(int64_t vocab, int64_t dim, int64_t tokens) {
  std::mt19937_64 rng(test::fresh_seed("embedding"));
  LinearWeight embed;  // as the CPU model holds it: bf16 values widened to float
  embed.rows = vocab;
  embed.cols = dim;
  embed.format = WeightFormat::kBF16;
  embed.values = test::random_normal(rng, size_t(vocab * dim), 1.0f);
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  for (int32_t& id : ids) id = int32_t(rng() % uint64_t(vocab));
  constexpr int64_t hc = 4;
  // The CPU model's gather (cpu::Model::forward): every stream a copy of the embedding row.
  std::vector<float> expected(size_t(tokens * hc * dim));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < hc; ++j) {
      for (int64_t i = 0; i < dim; ++i) {
        expected[size_t((t * hc + j) * dim + i)] = embed.dequantized(ids[size_t(t)], i);
      }
    }
  }
  DeviceBuffer<uint16_t> d_table(test::to_bf16(embed.values)), d_streams(expected.size());
  DeviceBuffer<int32_t> d_ids(ids);
  test::poison(d_streams);
  embed_into_streams(d_table.data(), d_ids.data(), tokens, dim, hc, d_streams.data(), nullptr);
  const test::Stats s = test::compare(test::from_bf16(d_streams.download()), expected, true);
  test::report("embed_into_streams", s);
  EXPECT_TRUE(s.finite);
  EXPECT_EQ(s.differ, 0u);
}

TEST(Embedding, CopiesTheRowIntoEveryStream) {
  DSV4_REQUIRE_GPU();
  check_embedding(4096, 4096, 37);  // Flash dim (a shorter vocabulary keeps the test small)
  check_embedding(50, 100, 5);      // dim not a multiple of 8: scalar path
}

void check_rms_norm(int64_t rows, int64_t dim, bool in_place) {
  std::mt19937_64 rng(test::fresh_seed("rms_norm"));
  const std::vector<float> x = test::random_normal(rng, size_t(rows * dim), 3.0f);
  std::vector<float> weight = test::random_normal(rng, size_t(dim), 0.5f);
  for (float& w : weight) w += 1.0f;
  std::vector<float> expected(x.size());
  cpu::rms_norm(x.data(), rows, dim, weight.data(), 1e-6, Numerics::kOfficial, expected.data());
  DeviceBuffer<uint16_t> d_x(test::to_bf16(x)), d_y(x.size());
  DeviceBuffer<float> d_w(weight);
  uint16_t* out = in_place ? d_x.data() : d_y.data();
  if (!in_place) test::poison(d_y);
  rms_norm(d_x.data(), rows, dim, d_w.data(), 1e-6f, out, nullptr);
  const std::vector<uint16_t> y = in_place ? d_x.download() : d_y.download();
  const test::Stats s = test::compare(test::from_bf16(y), expected, true);
  test::report(in_place ? "rms_norm (in place)" : "rms_norm", s);
  DSV4_EXPECT_CLOSE_BF16(s, 1, 1e-3);
  const double us = test::median_us(
      [&] { rms_norm(d_x.data(), rows, dim, d_w.data(), 1e-6f, d_y.data(), nullptr); });
  test::report_time(fmt::format("rms_norm {}x{}", rows, dim).c_str(), us);
}

TEST(RmsNorm, MatchesTheCpuAtFlashShapes) {
  DSV4_REQUIRE_GPU();
  check_rms_norm(64, 4096, false);
  check_rms_norm(1, 4096, true);
  check_rms_norm(3, 1024, false);  // q_lora_rank
  check_rms_norm(16, 512, true);   // kv_norm
}

TEST(RmsNorm, MatchesTheCpuAtOddShapes) {
  DSV4_REQUIRE_GPU();
  check_rms_norm(5, 100, false);
  check_rms_norm(3, 7, false);
}

void check_head_norm(int64_t rows, int64_t dim) {
  std::mt19937_64 rng(test::fresh_seed("head_norm"));
  const std::vector<float> x = test::random_normal(rng, size_t(rows * dim), 2.0f);
  std::vector<float> expected = x;
  cpu::unweighted_head_norm(expected.data(), rows, dim, 1e-6, Numerics::kOfficial);
  DeviceBuffer<uint16_t> d_x(test::to_bf16(x));
  unweighted_head_norm(d_x.data(), rows, dim, 1e-6f, nullptr);
  const test::Stats s = test::compare(test::from_bf16(d_x.download()), expected, true);
  test::report("unweighted_head_norm", s);
  // A last-bit difference of the fp32 sum can move the bf16 mean, hence the bf16 rsqrt, by
  // one ulp, which moves that row's products by up to two bf16 ulps.
  DSV4_EXPECT_CLOSE_BF16(s, 2, 1e-2);
  const double us =
      test::median_us([&] { unweighted_head_norm(d_x.data(), rows, dim, 1e-6f, nullptr); });
  test::report_time(fmt::format("unweighted_head_norm {}x{}", rows, dim).c_str(), us);
}

TEST(HeadNorm, MatchesTheCpuBf16Arithmetic) {
  DSV4_REQUIRE_GPU();
  check_head_norm(37 * 64, 512);  // 37 tokens x 64 heads x 512
  check_head_norm(64, 512);       // one decode token
  check_head_norm(7, 72);
  check_head_norm(5, 36);  // scalar path
}

}  // namespace
}  // namespace dsv4::cuda
