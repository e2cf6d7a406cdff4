// mHC collapse, expand and head collapse against src/cpu/hyper_connection.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cpu/hyper_connection.h"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

ModelConfig hc_config(int64_t dim) {
  ModelConfig config;
  config.dim = dim;
  config.hc_mult = 4;
  config.hc_sinkhorn_iters = 20;
  config.hc_eps = 1e-6;
  config.norm_eps = 1e-6;
  return config;
}

HyperConnectionWeights random_weights(std::mt19937_64& rng, int64_t mix, int64_t width,
                                      int64_t scales) {
  HyperConnectionWeights w;
  // fn rows of norm ~1 make the mixes O(1), so the sigmoids and Sinkhorn see varied inputs.
  w.fn = test::random_normal(rng, size_t(mix * width), 1.0f / std::sqrt(float(width)), false);
  w.base = test::random_normal(rng, size_t(mix), 1.0f, false);
  std::uniform_real_distribution<float> uniform(0.5f, 2.0f);
  for (int64_t i = 0; i < scales; ++i) w.scale.push_back(uniform(rng));
  return w;
}

// |gpu − cpu| in bf16 ulps of the magnitude of the terms summed into each element (scale_i).
// The GPU's pre / post / comb weights differ from the CPU's in their last bits (each comes from
// a 4·dim-long fp32 dot product, summed in a different order), so a rounded sum can land on
// the neighbouring bf16 value: near cancellation that is many ulps of the small result, but
// never more than one ulp of the terms.
double max_error_in_term_ulps(const std::vector<float>& gpu, const std::vector<float>& cpu,
                              const std::vector<float>& scale) {
  double worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const float magnitude = std::max(scale[i] * (1.0f + 1e-5f), 1e-30f);
    const double unit = std::ldexp(1.0, std::ilogb(magnitude) - 7);
    worst = std::max(worst, std::fabs(double(gpu[i]) - double(cpu[i])) / unit);
  }
  return worst;
}

// Σ_j |X_j[i]| per token and element: the magnitude of a collapse's terms (pre_j <= 1).
std::vector<float> collapse_scale(const std::vector<float>& streams, int64_t tokens, int64_t dim) {
  std::vector<float> scale(size_t(tokens * dim), 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t i = 0; i < dim; ++i) {
        scale[size_t(t * dim + i)] += std::fabs(streams[size_t((t * 4 + j) * dim + i)]);
      }
    }
  }
  return scale;
}

// The bound of the collapse / expand outputs: relative error <= 5e-3, at most 1% of the values
// on a neighbouring bf16 value, and no difference beyond one ulp of the summed terms.
void expect_within_term_ulp(const test::Stats& s, double term_ulps) {
  EXPECT_TRUE(s.finite);
  EXPECT_LE(s.relative, 5e-3);
  EXPECT_LE(double(s.differ), 1e-2 * double(s.count) + 0.5);
  EXPECT_LE(term_ulps, 1.001);
}

struct DeviceHcWeights {
  DeviceBuffer<float> fn, base, scale;
  explicit DeviceHcWeights(const HyperConnectionWeights& w)
      : fn(w.fn), base(w.base), scale(w.scale) {}
  HcParams params() const { return {fn.data(), base.data(), scale.data()}; }
};

void check_site(int64_t tokens, int64_t dim) {
  std::mt19937_64 rng(test::fresh_seed("mhc site"));
  const ModelConfig config = hc_config(dim);
  const HcShape shape = hc_shape(config);
  const int64_t hc = 4, width = hc * dim;
  const HyperConnectionWeights weights = random_weights(rng, config.mix_hc(), width, 3);
  const std::vector<float> streams = test::random_normal(rng, size_t(tokens * width), 1.0f);
  const std::vector<float> output = test::random_normal(rng, size_t(tokens * dim), 1.0f);

  // CPU: collapse, then expand with its own mix.
  std::vector<float> cpu_collapsed(size_t(tokens * dim));
  const cpu::HyperConnectionMix mix = cpu::hyper_connection_collapse(
      streams.data(), tokens, config, weights, Numerics::kOfficial, cpu_collapsed.data());
  std::vector<float> cpu_expanded = streams;
  cpu::hyper_connection_expand(cpu_expanded.data(), output.data(), tokens, config, mix,
                               Numerics::kOfficial);

  // GPU collapse.
  const DeviceHcWeights d_weights(weights);
  DeviceBuffer<uint16_t> d_streams(test::to_bf16(streams)), d_output(test::to_bf16(output));
  DeviceBuffer<uint16_t> d_collapsed(size_t(tokens * dim));
  DeviceBuffer<float> d_post(size_t(tokens * hc)), d_comb(size_t(tokens * hc * hc));
  DeviceBuffer<float> d_workspace(size_t(hc_workspace_floats(tokens, shape)));
  test::poison(d_collapsed);
  test::poison(d_post);
  test::poison(d_comb);
  test::poison(d_workspace);
  hc_collapse(d_streams.data(), tokens, shape, d_weights.params(), d_workspace.data(),
              d_collapsed.data(), d_post.data(), d_comb.data(), nullptr);
  const test::Stats collapsed =
      test::compare(test::from_bf16(d_collapsed.download()), cpu_collapsed, true);
  const test::Stats post = test::compare(d_post.download(), mix.post, false);
  const test::Stats comb = test::compare(d_comb.download(), mix.comb, false);
  const std::vector<float> gpu_collapsed = test::from_bf16(d_collapsed.download());
  const double collapsed_ulps =
      max_error_in_term_ulps(gpu_collapsed, cpu_collapsed, collapse_scale(streams, tokens, dim));
  test::report("hc_collapse: collapsed (bf16)", collapsed);
  std::printf("[measure]   largest difference: %.3f bf16 ulps of the summed terms\n",
              collapsed_ulps);
  test::report("hc_collapse: post (fp32)", post);
  test::report("hc_collapse: comb (fp32, after Sinkhorn)", comb);
  expect_within_term_ulp(collapsed, collapsed_ulps);
  EXPECT_TRUE(post.finite && comb.finite);
  EXPECT_LE(post.relative, 1e-5);
  EXPECT_LE(comb.relative, 1e-5);

  // GPU expand fed the CPU's post / comb: the same operation order, so bit-identical.
  {
    DeviceBuffer<uint16_t> d_x(test::to_bf16(streams));
    DeviceBuffer<float> d_cpu_post(mix.post), d_cpu_comb(mix.comb);
    hc_expand(d_x.data(), d_output.data(), d_cpu_post.data(), d_cpu_comb.data(), tokens, shape,
              nullptr);
    const test::Stats s = test::compare(test::from_bf16(d_x.download()), cpu_expanded, true);
    test::report("hc_expand (CPU post/comb)", s);
    EXPECT_TRUE(s.finite);
    EXPECT_EQ(s.differ, 0u);
  }
  // The GPU chain: expand with the GPU's own post / comb.
  hc_expand(d_streams.data(), d_output.data(), d_post.data(), d_comb.data(), tokens, shape,
            nullptr);
  const std::vector<float> gpu_expanded = test::from_bf16(d_streams.download());
  const test::Stats chain = test::compare(gpu_expanded, cpu_expanded, true);
  std::vector<float> expand_scale(cpu_expanded.size(), 0.0f);  // |post_k o| + Σ_j |comb_jk X_j|
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < hc; ++k) {
      for (int64_t i = 0; i < dim; ++i) {
        float sum = std::fabs(mix.post[size_t(t * hc + k)] * output[size_t(t * dim + i)]);
        for (int64_t j = 0; j < hc; ++j) {
          sum += std::fabs(mix.comb[size_t((t * hc + j) * hc + k)] *
                           streams[size_t((t * hc + j) * dim + i)]);
        }
        expand_scale[size_t((t * hc + k) * dim + i)] = sum;
      }
    }
  }
  const double chain_ulps = max_error_in_term_ulps(gpu_expanded, cpu_expanded, expand_scale);
  test::report("hc_collapse + hc_expand (GPU mix)", chain);
  std::printf("[measure]   largest difference: %.3f bf16 ulps of the summed terms\n", chain_ulps);
  expect_within_term_ulp(chain, chain_ulps);
  const double collapse_us = test::median_us([&] {
    hc_collapse(d_streams.data(), tokens, shape, d_weights.params(), d_workspace.data(),
                d_collapsed.data(), d_post.data(), d_comb.data(), nullptr);
  });
  test::report_time(fmt::format("hc_collapse tokens={} dim={}", tokens, dim).c_str(), collapse_us);
  const double expand_us = test::median_us([&] {
    hc_expand(d_streams.data(), d_output.data(), d_post.data(), d_comb.data(), tokens, shape,
              nullptr);
  });
  test::report_time(fmt::format("hc_expand tokens={} dim={}", tokens, dim).c_str(), expand_us);
}

TEST(HyperConnection, SiteMatchesTheCpuAtFlashShapes) {
  DSV4_REQUIRE_GPU();
  check_site(37, 4096);
  check_site(1, 4096);
  check_site(20, 7168);  // Pro dim
}

TEST(HyperConnection, SiteMatchesTheCpuAtOddShapes) {
  DSV4_REQUIRE_GPU();
  check_site(3, 100);  // dim not a multiple of 8, width not a multiple of the 512-wide slice
  check_site(9, 24);
}

// The collapse in two parts, post and comb on a second stream that waits for the first part
// (as the CUDA model runs it), gives hc_collapse's bits.
TEST(HyperConnection, SiteWeightsOnASecondStreamEqualTheOneStreamCollapse) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("mhc two streams"));
  const int64_t tokens = 5, dim = 4096, hc = 4, width = hc * dim;
  const ModelConfig config = hc_config(dim);
  const HcShape shape = hc_shape(config);
  const DeviceHcWeights d_weights(random_weights(rng, config.mix_hc(), width, 3));
  DeviceBuffer<uint16_t> d_streams(
      test::to_bf16(test::random_normal(rng, size_t(tokens * width), 1.0f)));
  DeviceBuffer<float> d_workspace(size_t(hc_workspace_floats(tokens, shape)));
  struct Outputs {
    DeviceBuffer<uint16_t> collapsed;
    DeviceBuffer<float> post, comb;
  };
  Outputs one{DeviceBuffer<uint16_t>(size_t(tokens * dim)),
              DeviceBuffer<float>(size_t(tokens * hc)),
              DeviceBuffer<float>(size_t(tokens * hc * hc))};
  Outputs two{DeviceBuffer<uint16_t>(size_t(tokens * dim)),
              DeviceBuffer<float>(size_t(tokens * hc)),
              DeviceBuffer<float>(size_t(tokens * hc * hc))};
  for (Outputs* o : {&one, &two}) {
    test::poison(o->collapsed);
    test::poison(o->post);
    test::poison(o->comb);
  }
  hc_collapse(d_streams.data(), tokens, shape, d_weights.params(), d_workspace.data(),
              one.collapsed.data(), one.post.data(), one.comb.data(), nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  test::poison(d_workspace);                 // the second run must write its own mixes
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());  // the poison, before streams that do not wait for it
  cudaStream_t first = nullptr, second = nullptr;
  cudaEvent_t input_done = nullptr;
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&first, cudaStreamNonBlocking));
  DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&second, cudaStreamNonBlocking));
  DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&input_done, cudaEventDisableTiming));
  hc_collapse_input(d_streams.data(), tokens, shape, d_weights.params(), d_workspace.data(),
                    two.collapsed.data(), first);
  DSV4_CUDA_CHECK(cudaEventRecord(input_done, first));
  DSV4_CUDA_CHECK(cudaStreamWaitEvent(second, input_done));
  hc_collapse_weights(tokens, shape, d_weights.params(), d_workspace.data(), two.post.data(),
                      two.comb.data(), second);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(two.collapsed.download(), one.collapsed.download());
  EXPECT_EQ(two.post.download(), one.post.download());
  EXPECT_EQ(two.comb.download(), one.comb.download());
  cudaEventDestroy(input_done);
  cudaStreamDestroy(second);
  cudaStreamDestroy(first);
}

void check_head(int64_t tokens, int64_t dim) {
  std::mt19937_64 rng(test::fresh_seed("mhc head"));
  const ModelConfig config = hc_config(dim);
  const HcShape shape = hc_shape(config);
  const int64_t hc = 4, width = hc * dim;
  const HyperConnectionWeights weights = random_weights(rng, hc, width, 1);
  const std::vector<float> streams = test::random_normal(rng, size_t(tokens * width), 1.0f);
  std::vector<float> expected(size_t(tokens * dim));
  cpu::hyper_connection_head(streams.data(), tokens, config, weights, Numerics::kOfficial,
                             expected.data());
  const DeviceHcWeights d_weights(weights);
  DeviceBuffer<uint16_t> d_streams(test::to_bf16(streams)), d_collapsed(size_t(tokens * dim));
  DeviceBuffer<float> d_workspace(size_t(hc_workspace_floats(tokens, shape)));
  test::poison(d_collapsed);
  hc_head_collapse(d_streams.data(), tokens, shape, d_weights.params(), d_workspace.data(),
                   d_collapsed.data(), nullptr);
  const std::vector<float> gpu = test::from_bf16(d_collapsed.download());
  const test::Stats s = test::compare(gpu, expected, true);
  const double ulps = max_error_in_term_ulps(gpu, expected, collapse_scale(streams, tokens, dim));
  test::report("hc_head_collapse", s);
  std::printf("[measure]   largest difference: %.3f bf16 ulps of the summed terms\n", ulps);
  expect_within_term_ulp(s, ulps);
}

TEST(HyperConnection, HeadMatchesTheCpu) {
  DSV4_REQUIRE_GPU();
  check_head(37, 4096);
  check_head(2, 100);
}

}  // namespace
}  // namespace dsv4::cuda
