// Greedy and top-p sampling on the GPU against the CPU sampler (src/engine/sampler.cpp) given
// the same uniform draws.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "cuda/kernels/sampling/sampling.h"
#include "engine/sampler.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

// The CPU sampler lives in dsv4_engine, which the GPU test binaries do not link; compile it
// into this test directly (one translation unit includes it).
#include "engine/sampler.h"

namespace dsv4::cuda {
namespace {

constexpr int64_t kVocab = 129280;

// The sampler's draw for a seed: its first generator output as a double in [0, 1).
double uniform_for_seed(uint64_t seed) {
  std::mt19937_64 generator(seed);
  return double(generator() >> 11) * 0x1p-53;
}

struct Row {
  std::vector<float> logits;
  float temperature, top_p;
};

std::vector<Row> test_rows(std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Row> rows;
  const auto make = [&](float scale, float temperature, float top_p) {
    Row r{std::vector<float>(size_t(kVocab)), temperature, top_p};
    for (float& v : r.logits) v = scale * normal(rng);
    rows.push_back(std::move(r));
    return &rows.back();
  };
  make(2.0f, 0.7f, 0.9f);
  make(2.0f, 1.0f, 1.0f);  // the whole vocabulary is the nucleus
  // Logits on a 0.5 grid: thousands of exact ties, ordered by token id on both sides.
  for (float& v : make(1.5f, 1.0f, 0.95f)->logits) v = std::round(v * 2.0f) / 2.0f;
  // Peaky: a few dominant tokens.
  Row* peaky = make(1.0f, 0.8f, 0.5f);
  for (int i = 0; i < 5; ++i) peaky->logits[size_t(rng() % uint64_t(kVocab))] += 12.0f;
  // Greedy inside sample(): two equal maxima, the first must win.
  Row* greedy = make(1.0f, 0.0f, 1.0f);
  greedy->logits[777] = 50.0f;
  greedy->logits[100000] = 50.0f;
  make(3.0f, 1.5f, 0.3f);
  return rows;
}

TEST(Sampling, ArgmaxIsTheFirstMaximum) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("argmax"));
  const int64_t rows = 8;
  std::vector<float> logits = test::random_normal(rng, size_t(rows * kVocab), 3.0f, false);
  logits[size_t(1 * kVocab + 5)] = 100.0f;  // ties: the first index wins
  logits[size_t(1 * kVocab + 9)] = 100.0f;
  logits[size_t(2 * kVocab + kVocab - 1)] = 100.0f;                             // the last element
  for (int64_t i = 0; i < kVocab; ++i) logits[size_t(3 * kVocab + i)] = -1.0f;  // all equal
  TokenSampler sampler(rows, kVocab);
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<int32_t> d_out(static_cast<size_t>(rows));
  test::poison(d_out);
  sampler.argmax(d_logits.data(), rows, d_out.data(), nullptr);
  const std::vector<int32_t> out = d_out.download();
  for (int64_t r = 0; r < rows; ++r) {
    Sampler cpu({0.0f, 1.0f, 0});
    EXPECT_EQ(out[size_t(r)],
              cpu.sample(std::span<const float>(logits.data() + r * kVocab, size_t(kVocab))))
        << "row " << r;
  }
  test::report_time("argmax 8 x 129280", test::median_us([&] {
                      sampler.argmax(d_logits.data(), rows, d_out.data(), nullptr);
                    }));
}

// A captured graph of sample() replayed with fresh draws: every choice equals the CPU's.
TEST(Sampling, TopPChoicesEqualTheCpuSamplerInAReplayedGraph) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed("top-p");
  std::mt19937_64 rng(seed);
  const std::vector<Row> rows = test_rows(rng);
  const auto n = int64_t(rows.size());
  std::vector<float> logits, temperature, top_p;
  for (const Row& r : rows) {
    logits.insert(logits.end(), r.logits.begin(), r.logits.end());
    temperature.push_back(r.temperature);
    top_p.push_back(r.top_p);
  }
  TokenSampler sampler(n, kVocab);
  DeviceBuffer<float> d_logits(logits), d_temperature(temperature), d_top_p(top_p);
  DeviceBuffer<double> d_uniform(static_cast<size_t>(n));
  DeviceBuffer<int32_t> d_out(static_cast<size_t>(n));
  cudaStream_t stream;
  DSV4_CUDA_CHECK(cudaStreamCreate(&stream));  // blocking: ordered after the uploads
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  sampler.sample(d_logits.data(), n, d_temperature.data(), d_top_p.data(), d_uniform.data(),
                 d_out.data(), stream);
  DSV4_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  size_t checked = 0, differ = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<double> uniform(static_cast<size_t>(n));
    std::vector<int32_t> expected(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      const uint64_t row_seed = seed + uint64_t(trial * n + r);
      uniform[size_t(r)] = uniform_for_seed(row_seed);
      Sampler cpu({rows[size_t(r)].temperature, rows[size_t(r)].top_p, row_seed});
      expected[size_t(r)] = cpu.sample(rows[size_t(r)].logits);
    }
    d_uniform.upload(uniform);
    test::poison(d_out);
    DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
    const std::vector<int32_t> out = d_out.download();
    for (int64_t r = 0; r < n; ++r) {
      ++checked;
      if (out[size_t(r)] != expected[size_t(r)]) {
        ++differ;
        ADD_FAILURE() << "trial " << trial << " row " << r << ": gpu " << out[size_t(r)] << " cpu "
                      << expected[size_t(r)] << " u " << uniform[size_t(r)];
      }
    }
  }
  std::printf("[measure] top-p sampling: %zu choices, %zu differ from the CPU sampler\n", checked,
              differ);
  const double us = test::median_us([&] {
    DSV4_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
  });
  test::report_time(fmt::format("sample graph {} x 129280", n).c_str(), us);
  DSV4_CUDA_CHECK(cudaGraphExecDestroy(exec));
  DSV4_CUDA_CHECK(cudaGraphDestroy(graph));
  DSV4_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(Sampling, SingleRowAndOddVocabulary) {
  DSV4_REQUIRE_GPU();
  const uint64_t seed = test::fresh_seed("single row");
  std::mt19937_64 rng(seed);
  for (const int64_t vocab : {kVocab, int64_t(1000), int64_t(7)}) {
    const std::vector<float> logits = test::random_normal(rng, size_t(vocab), 2.0f, false);
    TokenSampler sampler(1, vocab);
    DeviceBuffer<float> d_logits(logits);
    DeviceBuffer<float> d_temperature(std::vector<float>{0.9f}), d_top_p(std::vector<float>{0.8f});
    DeviceBuffer<double> d_uniform(1);
    DeviceBuffer<int32_t> d_out(1);
    for (int trial = 0; trial < 8; ++trial) {
      const uint64_t s = seed + uint64_t(trial);
      d_uniform.upload({uniform_for_seed(s)});
      sampler.sample(d_logits.data(), 1, d_temperature.data(), d_top_p.data(), d_uniform.data(),
                     d_out.data(), nullptr);
      Sampler cpu({0.9f, 0.8f, s});
      EXPECT_EQ(d_out.download()[0], cpu.sample(logits)) << "vocab " << vocab << " trial " << trial;
    }
    if (vocab == kVocab) {
      const auto launch = [&] {
        sampler.sample(d_logits.data(), 1, d_temperature.data(), d_top_p.data(), d_uniform.data(),
                       d_out.data(), nullptr);
      };
      test::report_time("sample 1 x 129280 (N(0,2) logits, T .9, p .8)", test::median_us(launch));
      // Peaked logits: a nucleus of a few tokens, so this is the fixed cost (passes + sort).
      std::vector<float> peaked = logits;
      for (float& v : peaked) v *= 10.0f;
      d_logits.upload(peaked);
      test::report_time("sample 1 x 129280 (logits x10: small nucleus)", test::median_us(launch));
      test::report_time("argmax 1 x 129280", test::median_us([&] {
                          sampler.argmax(d_logits.data(), 1, d_out.data(), nullptr);
                        }));
    }
  }
}

}  // namespace
}  // namespace dsv4::cuda
