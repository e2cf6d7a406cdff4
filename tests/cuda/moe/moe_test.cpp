// SwiGLU (alone and quantizing for w2) and combine kernels, and the whole MoE sublayer against
// cpu::moe_forward: the GPU router, grouping, gather, SwiGLU and combine, with the expert GEMMs
// (another kernel family) computed by cpu::linear on the host between them.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/formats.h"
#include "core/quantize.h"
#include "cpu/linear.h"
#include "cpu/moe.h"
#include "cuda/kernels/moe/combine.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/kernels/moe/router.h"
#include "cuda/kernels/moe/swiglu.h"
#include "gpu_test_support.h"
#include "kernel_test_util.h"

namespace dsv4::cuda {
namespace {

// The middle of cpu::expert_forward (src/cpu/moe.cpp), for the kernel-level test below.
float cpu_swiglu(float g, float u, float limit, const float* weight) {
  if (limit > 0) {
    u = std::clamp(u, -limit, limit);
    g = std::min(g, limit);
  }
  float h = g / (1.0f + std::exp(-g)) * u;
  if (weight) h *= *weight;
  return round_bf16(h);
}

// SwiGLU's inputs: [rows, 2·inter] gate then up, values up to ±~25 so that the clamp at 10
// matters; routing weights and a shuffled grouped order.
struct SwigluInputs {
  std::vector<float> gu, route;
  std::vector<int32_t> order;
};

SwigluInputs random_swiglu_inputs(std::mt19937_64& rng, int64_t rows, int64_t inter) {
  SwigluInputs in{test::random_normal(rng, size_t(rows * 2 * inter), 6.0f),
                  test::random_normal(rng, size_t(rows), 0.3f, false),
                  std::vector<int32_t>(static_cast<size_t>(rows))};
  std::iota(in.order.begin(), in.order.end(), 0);
  std::shuffle(in.order.begin(), in.order.end(), rng);
  return in;
}

TEST(Swiglu, MatchesTheCpuFormulaOnAFusedGateUpLayout) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("swiglu"));
  for (const auto& [rows, inter] : {std::pair<int64_t, int64_t>{384, 2048}, {7, 36}}) {
    const auto [gu, route, order] = random_swiglu_inputs(rng, rows, inter);
    std::vector<float> expected(size_t(rows * inter)), expected_plain(expected.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < inter; ++i) {
        const float g = gu[size_t(r * 2 * inter + i)], u = gu[size_t(r * 2 * inter + inter + i)];
        expected[size_t(r * inter + i)] = cpu_swiglu(g, u, 10.0f, &route[size_t(order[size_t(r)])]);
        expected_plain[size_t(r * inter + i)] = cpu_swiglu(g, u, 10.0f, nullptr);
      }
    }
    DeviceBuffer<uint16_t> d_gu(test::to_bf16(gu)), d_h(expected.size());
    DeviceBuffer<float> d_route(route);
    DeviceBuffer<int32_t> d_order(order);
    test::poison(d_h);
    const auto launch = [&] {
      swiglu(d_gu.data(), 2 * inter, d_gu.data() + inter, 2 * inter, rows, inter, d_route.data(),
             d_order.data(), 10.0f, d_h.data(), nullptr);
    };
    launch();
    const test::Stats s = test::compare(test::from_bf16(d_h.download()), expected, true);
    test::report("swiglu (routed)", s);
    DSV4_EXPECT_CLOSE_BF16(s, 1, 1e-4);
    test::report_time(fmt::format("swiglu rows={} inter={}", rows, inter).c_str(),
                      test::median_us(launch));
    swiglu(d_gu.data(), 2 * inter, d_gu.data() + inter, 2 * inter, rows, inter, nullptr, nullptr,
           10.0f, d_h.data(), nullptr);
    const test::Stats p = test::compare(test::from_bf16(d_h.download()), expected_plain, true);
    test::report("swiglu (shared expert, no weight)", p);
    DSV4_EXPECT_CLOSE_BF16(p, 1, 1e-4);
  }
}

TEST(Swiglu, QuantizedForW2AsTheHostQuantizesSwiglusOutput) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("swiglu quantize"));
  for (const auto& [rows, inter] : {std::pair<int64_t, int64_t>{384, 2048}, {5, 384}}) {
    const auto [gu, route, order] = random_swiglu_inputs(rng, rows, inter);
    DeviceBuffer<uint16_t> d_gu(test::to_bf16(gu)), d_h(size_t(rows * inter));
    DeviceBuffer<float> d_route(route), d_scales(size_t(rows * inter / 128));
    DeviceBuffer<int32_t> d_order(order);
    DeviceBuffer<uint8_t> d_codes(size_t(rows * inter));
    for (const bool routed : {true, false}) {
      const float* weights = routed ? d_route.data() : nullptr;
      const int32_t* by = routed ? d_order.data() : nullptr;
      swiglu(d_gu.data(), 2 * inter, d_gu.data() + inter, 2 * inter, rows, inter, weights, by,
             10.0f, d_h.data(), nullptr);
      test::poison(d_codes);
      test::poison(d_scales);
      swiglu_quantize_fp8(d_gu.data(), 2 * inter, d_gu.data() + inter, 2 * inter, rows, inter,
                          weights, by, 10.0f, d_codes.data(), d_scales.data(), nullptr);
      const std::vector<float> h = test::from_bf16(d_h.download());
      std::vector<uint8_t> want_codes(h.size());
      std::vector<float> want_scales(d_scales.size());
      quantize_fp8(h.data(), h.size(), 128, want_codes.data(), want_scales.data());
      EXPECT_EQ(d_codes.download(), want_codes)
          << rows << "x" << inter << (routed ? " routed" : "");
      EXPECT_EQ(d_scales.download(), want_scales) << rows << "x" << inter;
    }
  }
}

TEST(Combine, SumsInAscendingExpertIdThenAddsTheSharedExpert) {
  DSV4_REQUIRE_GPU();
  std::mt19937_64 rng(test::fresh_seed("combine"));
  const int64_t tokens = 64, k = 6, n_experts = 256, dim = 4096;
  std::vector<int32_t> experts, all(static_cast<size_t>(n_experts));
  for (int64_t t = 0; t < tokens; ++t) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    experts.insert(experts.end(), all.begin(), all.begin() + k);
  }
  const auto slots = size_t(tokens * k);
  DeviceBuffer<int32_t> d_experts(experts), d_counts(static_cast<size_t>(n_experts)),
      d_offsets(size_t(n_experts + 1)), d_order(slots), d_position(slots);
  moe_group(d_experts.data(), tokens, k, n_experts, d_counts.data(), d_offsets.data(),
            d_order.data(), d_position.data(), nullptr, nullptr);
  const std::vector<int32_t> position = d_position.download();
  // Expert outputs in grouped order, with a wide dynamic range so the order of the sum shows.
  std::vector<float> expert_out = test::random_normal(rng, slots * size_t(dim), 1.0f);
  for (size_t i = 0; i < expert_out.size(); i += 7)
    expert_out[i] = round_bf16(expert_out[i] * 300.0f);
  const std::vector<float> shared = test::random_normal(rng, size_t(tokens * dim), 1.0f);
  // cpu::moe_forward's order: for e ascending, sum += out_e (fp32), then bf16(sum + shared).
  std::vector<float> expected(size_t(tokens * dim));
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int64_t> js(static_cast<size_t>(k));
    std::iota(js.begin(), js.end(), 0);
    std::stable_sort(js.begin(), js.end(), [&](int64_t a, int64_t b) {
      return experts[size_t(t * k + a)] < experts[size_t(t * k + b)];
    });
    for (int64_t i = 0; i < dim; ++i) {
      float sum = 0.0f;
      for (const int64_t j : js) sum += expert_out[size_t(position[size_t(t * k + j)] * dim + i)];
      expected[size_t(t * dim + i)] = round_bf16(sum + shared[size_t(t * dim + i)]);
    }
  }
  DeviceBuffer<uint16_t> d_expert_out(test::to_bf16(expert_out)), d_shared(test::to_bf16(shared)),
      d_out(size_t(tokens * dim));
  test::poison(d_out);
  const auto launch = [&] {
    moe_combine(d_expert_out.data(), d_experts.data(), d_position.data(), d_shared.data(), tokens,
                k, dim, d_out.data(), nullptr);
  };
  launch();
  const test::Stats s = test::compare(test::from_bf16(d_out.download()), expected, true);
  test::report("moe_combine", s);
  EXPECT_TRUE(s.finite);
  EXPECT_EQ(s.differ, 0u);
  test::report_time("moe_combine T=64 k=6 dim=4096", test::median_us(launch));
}

LinearWeight random_linear(std::mt19937_64& rng, int64_t rows, int64_t cols, float gain) {
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.format = WeightFormat::kBF16;
  w.values = test::random_normal(rng, size_t(rows * cols), gain / std::sqrt(float(cols)));
  return w;
}

// The same with e4m3 values and one power-of-two scale per 128x128 block, as the checkpoints'
// experts: their official GEMM quantizes its input per 128 (the quantized gather feeds them).
LinearWeight random_fp8_linear(std::mt19937_64& rng, int64_t rows, int64_t cols, float gain) {
  LinearWeight w = random_linear(rng, rows, cols, gain);
  w.format = WeightFormat::kFp8;
  const int64_t brows = (rows + 127) / 128, bcols = (cols + 127) / 128;
  w.scales.assign(size_t(brows * bcols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& scale = w.scales[size_t((r / 128) * bcols + c / 128)];
      scale = std::max(scale, std::fabs(w.values[size_t(r * cols + c)]));
    }
  }
  for (float& scale : w.scales) scale = fp8_block_scale(scale);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& v = w.values[size_t(r * cols + c)];
      v = e4m3_to_float(float_to_e4m3(v / w.scales[size_t((r / 128) * bcols + c / 128)]));
    }
  }
  return w;
}

// y = bf16(linear(x)) for `rows` rows: the GEMMs the other kernel family will provide.
std::vector<float> host_linear(const std::vector<float>& x, int64_t row0, int64_t rows,
                               const LinearWeight& w) {
  std::vector<float> y(size_t(rows * w.rows));
  if (rows == 0) return y;
  cpu::linear(x.data() + row0 * w.cols, rows, w, Numerics::kOfficial, y.data());
  for (float& v : y) v = round_bf16(v);
  return y;
}

void check_moe_layer(int64_t tokens, bool hash) {
  std::mt19937_64 rng(test::fresh_seed("moe layer"));
  ModelConfig config;
  config.dim = 256;
  config.moe_inter_dim = 128;
  config.n_routed_experts = 32;
  config.n_activated_experts = 6;
  config.score_func = "sqrtsoftplus";
  config.route_scale = 1.5;
  config.swiglu_limit = 10.0;
  const int64_t dim = config.dim, inter = config.moe_inter_dim, E = config.n_routed_experts,
                k = config.n_activated_experts, vocab = 500;
  MoeWeights weights;
  weights.gate = random_linear(rng, E, dim, 1.0f);
  weights.gate_bias = test::random_normal(rng, size_t(E), 0.1f, false);
  for (int64_t e = 0; e <= E; ++e) {
    // Gain 6 on w1 / w3 puts a good share of g and u beyond the clamp at 10.
    ExpertWeights expert{random_fp8_linear(rng, inter, dim, 6.0f),
                         random_linear(rng, dim, inter, 1.0f),
                         random_fp8_linear(rng, inter, dim, 6.0f)};
    if (e < E) {
      weights.experts.push_back(std::move(expert));
    } else {
      weights.shared = std::move(expert);
    }
  }
  std::vector<int32_t> ids(static_cast<size_t>(tokens)), all(static_cast<size_t>(E));
  for (int32_t& id : ids) id = int32_t(rng() % uint64_t(vocab));
  for (int64_t v = 0; v < vocab; ++v) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    weights.tid2eid.insert(weights.tid2eid.end(), all.begin(), all.begin() + k);
  }
  const std::vector<float> x = test::random_normal(rng, size_t(tokens * dim), 1.0f);
  std::vector<float> expected(size_t(tokens * dim));
  cpu::moe_forward(x.data(), ids.data(), tokens, config, weights, hash, Numerics::kOfficial,
                   expected.data());

  const auto slots = size_t(tokens * k);
  std::vector<float> logits(size_t(tokens * E));
  cpu::linear(x.data(), tokens, weights.gate, Numerics::kFp32, logits.data());
  // x as the FP8 GEMMs take it: bf16, then per-128 codes and scales (the host quantizer).
  std::vector<float> x_bf16 = test::from_bf16(test::to_bf16(x));
  std::vector<uint8_t> x_codes(x_bf16.size());
  std::vector<float> x_scales(x_bf16.size() / 128);
  quantize_fp8(x_bf16.data(), x_bf16.size(), 128, x_codes.data(), x_scales.data());
  DeviceBuffer<uint8_t> d_x_codes(x_codes), d_gathered_codes(slots * size_t(dim));
  DeviceBuffer<float> d_x_scales(x_scales), d_gathered_scales(slots * size_t(dim / 128));
  DeviceBuffer<float> d_logits(logits), d_bias(weights.gate_bias), d_route(slots);
  DeviceBuffer<int32_t> d_tid2eid(weights.tid2eid), d_ids(ids), d_experts(slots),
      d_counts(static_cast<size_t>(E)), d_offsets(size_t(E + 1)), d_order(slots), d_position(slots);
  moe_route(d_logits.data(), tokens, {E, k, ScoreFunc::kSqrtSoftplus, 1.5f}, d_bias.data(),
            hash ? d_tid2eid.data() : nullptr, hash ? d_ids.data() : nullptr, d_experts.data(),
            d_route.data(), nullptr);
  moe_group(d_experts.data(), tokens, k, E, d_counts.data(), d_offsets.data(), d_order.data(),
            d_position.data(), nullptr, nullptr);
  moe_gather_quantized(d_x_codes.data(), d_x_scales.data(), d_order.data(), tokens, k, dim,
                       d_gathered_codes.data(), d_gathered_scales.data(), nullptr);
  const cpu::Routing routing = cpu::route(x.data(), ids.data(), tokens, config, weights, hash);
  ASSERT_EQ(d_experts.download(), routing.experts);

  // The gathered rows are the tokens' quantized rows in grouped order; their values (codes
  // times scales) quantize to the same codes again in host_linear.
  const std::vector<int32_t> order = d_order.download();
  const std::vector<uint8_t> gathered_codes = d_gathered_codes.download();
  const std::vector<float> gathered_scales = d_gathered_scales.download();
  std::vector<float> gathered(slots * size_t(dim));
  for (size_t p = 0; p < slots; ++p) {
    const size_t token = size_t(order[p]) / size_t(k);
    for (int64_t i = 0; i < dim; ++i) {
      const size_t at = p * size_t(dim) + size_t(i), from = token * size_t(dim) + size_t(i);
      ASSERT_EQ(gathered_codes[at], x_codes[from]) << "grouped row " << p << ", input " << i;
      gathered[at] = e4m3_to_float(gathered_codes[at]) * gathered_scales[at / 128];
    }
    for (int64_t b = 0; b < dim / 128; ++b) {
      ASSERT_EQ(gathered_scales[p * size_t(dim / 128) + size_t(b)],
                x_scales[token * size_t(dim / 128) + size_t(b)]);
    }
  }

  // Host: w1 / w3 per expert over its grouped rows.
  const std::vector<int32_t> offsets = d_offsets.download();
  std::vector<float> gate(slots * size_t(inter)), up(gate.size());
  for (int64_t e = 0; e < E; ++e) {
    const int64_t p0 = offsets[size_t(e)], m = offsets[size_t(e + 1)] - p0;
    const std::vector<float> g = host_linear(gathered, p0, m, weights.experts[size_t(e)].w1);
    const std::vector<float> u = host_linear(gathered, p0, m, weights.experts[size_t(e)].w3);
    std::copy(g.begin(), g.end(), gate.begin() + p0 * inter);
    std::copy(u.begin(), u.end(), up.begin() + p0 * inter);
  }
  DeviceBuffer<uint16_t> d_gate(test::to_bf16(gate)), d_up(test::to_bf16(up)), d_h(gate.size());
  swiglu(d_gate.data(), inter, d_up.data(), inter, int64_t(slots), inter, d_route.data(),
         d_order.data(), 10.0f, d_h.data(), nullptr);
  // Host: w2 per expert.
  const std::vector<float> h = test::from_bf16(d_h.download());
  std::vector<float> expert_out(slots * size_t(dim));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t p0 = offsets[size_t(e)], m = offsets[size_t(e + 1)] - p0;
    const std::vector<float> o = host_linear(h, p0, m, weights.experts[size_t(e)].w2);
    std::copy(o.begin(), o.end(), expert_out.begin() + p0 * dim);
  }
  // The shared expert through the same SwiGLU kernel, without a routing weight.
  DeviceBuffer<uint16_t> d_shared_gate(test::to_bf16(host_linear(x, 0, tokens, weights.shared.w1))),
      d_shared_up(test::to_bf16(host_linear(x, 0, tokens, weights.shared.w3))),
      d_shared_h(size_t(tokens * inter));
  swiglu(d_shared_gate.data(), inter, d_shared_up.data(), inter, tokens, inter, nullptr, nullptr,
         10.0f, d_shared_h.data(), nullptr);
  const std::vector<float> shared =
      host_linear(test::from_bf16(d_shared_h.download()), 0, tokens, weights.shared.w2);
  DeviceBuffer<uint16_t> d_expert_out(test::to_bf16(expert_out)), d_shared(test::to_bf16(shared)),
      d_out(size_t(tokens * dim));
  test::poison(d_out);
  moe_combine(d_expert_out.data(), d_experts.data(), d_position.data(), d_shared.data(), tokens, k,
              dim, d_out.data(), nullptr);
  const test::Stats s = test::compare(test::from_bf16(d_out.download()), expected, true);
  test::report(hash ? "moe layer vs cpu::moe_forward (hash)" : "moe layer vs cpu::moe_forward", s);
  // Bit-identical unless a routing weight differs in its last bit (log1p), which can move an
  // h value by one bf16 ulp and the sums downstream of it by a little more.
  DSV4_EXPECT_CLOSE_BF16(s, 4, 1e-2);
}

TEST(MoeLayer, MatchesCpuMoeForward) {
  DSV4_REQUIRE_GPU();
  check_moe_layer(40, false);
  check_moe_layer(1, false);
  check_moe_layer(40, true);
}

}  // namespace
}  // namespace dsv4::cuda
