// RoPE and inverse RoPE against cpu::Rope, the host frequency table against cpu::Rope's, and
// replay of a captured graph at new positions.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/rope_frequencies.h"
#include "cpu/rope.h"
#include "cuda/kernels/norm_rope_mhc/rope.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

// Host-only: with fp32 numerics, rotating (1, 0) gives (cos(p·f), sin(p·f)) exactly, so equal
// results at several positions mean the two tables hold the same floats.
TEST(RopeTable, IsTheCpuTableBitForBit) {
  const ModelConfig config = preset_config("flash");
  for (const bool compressed : {false, true}) {
    const cpu::Rope rope = cpu::Rope::for_layer(config, compressed);
    const std::vector<float> table = rope_inv_freq_for_layer(config, compressed);
    ASSERT_EQ(table.size(), rope.pair_count());
    for (const int64_t position : {1, 3, 1000, 65537, 1000003}) {
      std::vector<float> x(2 * table.size(), 0.0f);
      for (size_t i = 0; i < table.size(); ++i) x[2 * i] = 1.0f;
      rope.apply(x.data(), position, false, Numerics::kFp32);
      for (size_t i = 0; i < table.size(); ++i) {
        const float angle = float(position) * table[i];
        EXPECT_EQ(x[2 * i], std::cos(angle)) << "pair " << i << " position " << position;
        EXPECT_EQ(x[2 * i + 1], std::sin(angle)) << "pair " << i << " position " << position;
      }
    }
  }
}

struct RopeCase {
  int64_t rows, heads, head_dim, row_stride;
  bool inverse;
  int64_t max_position;
};

// The CPU reference: cpu::Rope::apply on the last rope_dim values of every head.
std::vector<float> cpu_rope(std::vector<float> x, const RopeCase& c, const cpu::Rope& rope,
                            const std::vector<int32_t>& positions) {
  const auto rope_dim = int64_t(2 * rope.pair_count());
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t h = 0; h < c.heads; ++h) {
      rope.apply(x.data() + r * c.row_stride + h * c.head_dim + c.head_dim - rope_dim,
                 positions[size_t(r)], c.inverse, Numerics::kOfficial);
    }
  }
  return x;
}

// Outputs further from the CPU's than one bf16 ulp plus what a 1-ulp difference in cos or sin
// (and the roundings after it) can make of their pair (x[j], x[j ^ 1]), 2^-22 · (|a| + |b|): the
// GPU's cos/sin are correctly rounded, glibc's cosf/sinf are in all but rare cases, and where a
// rotation nearly cancels, such a difference is many bf16 ulps of the small result (8 seen on
// an H200).
size_t beyond_rounding(const std::vector<float>& got, const std::vector<float>& want,
                       const std::vector<float>& x) {
  size_t count = 0;
  for (size_t j = 0; j < want.size(); ++j) {
    const float bf16_ulp = std::ldexp(1.0f, std::ilogb(want[j]) - 7);
    const float trig_ulp = std::ldexp(std::fabs(x[j]) + std::fabs(x[j ^ 1]), -22);
    if (!(std::fabs(got[j] - want[j]) <= bf16_ulp + trig_ulp)) ++count;
  }
  return count;
}

void check_rope(const RopeCase& c, const cpu::Rope& rope, const std::vector<float>& table,
                const char* what) {
  std::mt19937_64 rng(test::fresh_seed(what));
  const std::vector<float> x = test::random_normal(rng, size_t(c.rows * c.row_stride), 2.0f);
  std::vector<int32_t> positions(static_cast<size_t>(c.rows));
  for (int32_t& p : positions) p = int32_t(rng() % uint64_t(c.max_position));
  const std::vector<float> expected = cpu_rope(x, c, rope, positions);
  const RopeTable d_table(table);
  DeviceBuffer<uint16_t> d_x(test::to_bf16(x));
  DeviceBuffer<int32_t> d_positions(positions);
  apply_rope(d_x.data(), c.rows, c.heads, c.head_dim, c.row_stride, d_table, d_positions.data(),
             c.inverse, nullptr);
  const std::vector<float> got = test::from_bf16(d_x.download());
  const test::Stats s = test::compare(got, expected, true);
  test::report(what, s);
  EXPECT_TRUE(s.finite);
  EXPECT_LE(s.relative, 1e-4);
  EXPECT_LE(double(s.differ), 1e-4 * double(s.count) + 0.5);
  EXPECT_EQ(beyond_rounding(got, expected, x), 0u);
  const double us = test::median_us([&] {
    apply_rope(d_x.data(), c.rows, c.heads, c.head_dim, c.row_stride, d_table, d_positions.data(),
               c.inverse, nullptr);
  });
  test::report_time(fmt::format("{} rows={} heads={}", what, c.rows, c.heads).c_str(), us);
}

TEST(Rope, MatchesTheCpuAtFlashShapes) {
  DSV4_REQUIRE_GPU();
  const ModelConfig config = preset_config("flash");
  for (const bool compressed : {false, true}) {
    const cpu::Rope rope = cpu::Rope::for_layer(config, compressed);
    const std::vector<float> table = rope_inv_freq_for_layer(config, compressed);
    // Queries: 37 tokens x 64 heads x 512; KV rows: one head; o: the inverse rotation.
    check_rope({37, 64, 512, 64 * 512, false, 1 << 20}, rope, table,
               compressed ? "rope q (YaRN)" : "rope q");
    check_rope({37, 1, 512, 512, false, 1 << 20}, rope, table,
               compressed ? "rope kv (YaRN)" : "rope kv");
    check_rope({37, 64, 512, 64 * 512, true, 1 << 20}, rope, table,
               compressed ? "inverse rope o (YaRN)" : "inverse rope o");
  }
}

TEST(Rope, MatchesTheCpuAtOddShapes) {
  DSV4_REQUIRE_GPU();
  const cpu::Rope rope(16, 10000.0, 0, 1.0, 0.0, 0.0);
  const std::vector<float> table = rope_inverse_frequencies(16, 10000.0, 0, 1.0, 0.0, 0.0);
  check_rope({5, 3, 40, 130, false, 5000}, rope, table, "rope odd (padded rows)");
  check_rope({5, 3, 40, 130, true, 5000}, rope, table, "inverse rope odd");
}

TEST(Rope, CapturedGraphReplaysAtNewPositions) {
  DSV4_REQUIRE_GPU();
  const ModelConfig config = preset_config("flash");
  const cpu::Rope rope = cpu::Rope::for_layer(config, true);
  const RopeTable d_table(rope_inv_freq_for_layer(config, true));
  const RopeCase c{4, 64, 512, 64 * 512, false, 1 << 20};
  DeviceBuffer<uint16_t> d_x(size_t(c.rows * c.row_stride));
  DeviceBuffer<int32_t> d_positions(size_t(c.rows));
  cudaStream_t stream;
  DSV4_CUDA_CHECK(cudaStreamCreate(&stream));  // blocking: ordered after the uploads
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  apply_rope(d_x.data(), c.rows, c.heads, c.head_dim, c.row_stride, d_table, d_positions.data(),
             c.inverse, stream);
  DSV4_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  std::mt19937_64 rng(test::fresh_seed("rope graph"));
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> x = test::random_normal(rng, size_t(c.rows * c.row_stride), 2.0f);
    std::vector<int32_t> positions(static_cast<size_t>(c.rows));
    for (int32_t& p : positions) p = int32_t(rng() % uint64_t(c.max_position));
    d_x.upload(test::to_bf16(x));
    d_positions.upload(positions);
    DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
    const test::Stats s =
        test::compare(test::from_bf16(d_x.download()), cpu_rope(x, c, rope, positions), true);
    test::report("rope graph replay", s);
    DSV4_EXPECT_CLOSE_BF16(s, 1, 1e-4);
  }
  DSV4_CUDA_CHECK(cudaGraphExecDestroy(exec));
  DSV4_CUDA_CHECK(cudaGraphDestroy(graph));
  DSV4_CUDA_CHECK(cudaStreamDestroy(stream));
}

}  // namespace
}  // namespace dsv4::cuda
