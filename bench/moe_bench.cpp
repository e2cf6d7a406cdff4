// dsv4_moe_bench: the routed experts of one MoE layer on Flash (dim 4096, 256 experts of
// inter 2048) and Pro (dim 7168, 384 experts of inter 3072) shapes, 6 experts per token, MXFP4
// weights (random, as `dsv4 bench` makes them), at 1 to 8192 tokens per step with uniform
// routing (6 distinct random experts per token) and skewed routing (expert 0 takes every token,
// the other 5 random). Timed, as one CUDA graph, as the engine runs them: grouping (moe_group,
// which also lists the expert tiles), FP8 quantization of the tokens' rows, the w1|w3 expert
// GEMM on the grouped rows (moe_experts_gate_up: at decode sizes it reads the tokens' rows in
// grouped order, from expert_wgmma_min_tokens a gather kernel copies them first), the clamped
// SwiGLU with the routing weight and the FP8 quantization of the w2 inputs in one kernel, and
// the w2 expert GEMM. FLOPs = 6·slots·inter·dim (slots = tokens · 6); bytes = the
// FP4 weights and scales of every expert that gets a token, plus the FP8 inputs and the bf16
// outputs. Ceilings measured in the same run: HBM read, and a cuBLASLt FP8 GEMM at 8192³ as the
// FP8 tensor peak; the roofline is the larger of bytes / HBM and FLOPs / FP8 peak.
// Baseline: the same layer's two GEMMs with cuBLASLt, on the experts' weights converted to FP8
// (one per-tensor scale, no block scales), one GEMM per expert that gets tokens (token counts
// padded to 16), also as a CUDA graph; it omits the grouping, quantization and SwiGLU that the
// engine's time includes. Routings rotate over 4 samples per row so that weights come from HBM.
// Median of 20 replays (5 from 1024 tokens on).
// With --breakdown (uniform routing only): each kernel's share of the layer, as the time that
// graphs of the chain's first 1, 2, ... 5 kernels add (the first also holds the graph's start),
// and each expert GEMM's bytes per second on its own weights. These are differences of medians:
// at thousands of microseconds the short kernels' columns are within the noise (even negative).
// With --separate-gather: the gather kernel before w1|w3 at every size (the chain before the
// decode-size GEMM read the tokens' rows itself), for comparison.
// Usage: dsv4_moe_bench [--quick | --tokens N[,N...]] [--breakdown] [--separate-gather].
#include <cublasLt.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "cuda/kernels/gemm/expert_tiles.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/kernels/moe/swiglu.h"
#include "cuda/model/random_weights.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/device_buffer.h"
#include "cuda/runtime/gpu_timer.h"
#include "cuda/runtime/hbm_bandwidth.h"
#include "model/config.h"

namespace dsv4::cuda {
namespace {

constexpr int kSamples = 4;   // routings per row, cycled so that weights come from HBM
constexpr int64_t kPad = 16;  // cuBLASLt baseline: token counts padded to this

struct Ceilings {
  double hbm = 0.0, fp8 = 0.0;
};

// cuBLASLt FP8 GEMMs y[n, N] (bf16) = x[n, K] · w[N, K]ᵀ, both e4m3 row-major, scale 1: the
// TN layout cuBLASLt's FP8 kernels need. Algorithms are chosen once per shape.
class LtGemm {
 public:
  LtGemm() : workspace_(kWorkspaceBytes) {
    if (cublasLtCreate(&handle_) != CUBLAS_STATUS_SUCCESS) fail("cuBLASLt: no handle");
  }
  ~LtGemm() {
    for (auto& [key, plan] : plans_) {
      cublasLtMatmulDescDestroy(plan.desc);
      for (cublasLtMatrixLayout_t l : {plan.a, plan.b, plan.c}) cublasLtMatrixLayoutDestroy(l);
    }
    cublasLtDestroy(handle_);
  }
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // False (and nothing enqueued) where cuBLASLt has no algorithm for the shape.
  bool run(const uint8_t* w, const uint8_t* x, uint16_t* y, int64_t n_out, int64_t k, int64_t n,
           cudaStream_t stream) {
    const Plan* plan = find(n_out, k, n);
    if (!plan) return false;
    const float one = 1.0f, zero = 0.0f;
    return cublasLtMatmul(handle_, plan->desc, &one, w, plan->a, x, plan->b, &zero, y, plan->c, y,
                          plan->c, &plan->algo, workspace_.data(), kWorkspaceBytes,
                          stream) == CUBLAS_STATUS_SUCCESS;
  }

 private:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };

  const Plan* find(int64_t n_out, int64_t k, int64_t n) {
    const auto key = std::make_tuple(n_out, k, n);
    if (const auto it = plans_.find(key); it != plans_.end()) return &it->second;
    Plan plan;
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    bool ok = cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) ==
              CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                              sizeof(transpose)) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep,
                                              sizeof(keep)) == CUBLAS_STATUS_SUCCESS;
    // Column-major: A = w as [k, n_out] (op T), B = x as [k, n], C = y as [n_out, n].
    ok = ok && cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n_out),
                                          k) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n), k) ==
                   CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatrixLayoutCreate(&plan.c, CUDA_R_16BF, uint64_t(n_out), uint64_t(n),
                                          n_out) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreference_t preference = nullptr;
    ok = ok && cublasLtMatmulPreferenceCreate(&preference) == CUBLAS_STATUS_SUCCESS;
    const uint64_t workspace = kWorkspaceBytes;
    ok = ok && cublasLtMatmulPreferenceSetAttribute(
                   preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                   sizeof(workspace)) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    ok = ok &&
         cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c,
                                        preference, 1, &result, &found) == CUBLAS_STATUS_SUCCESS &&
         found > 0;
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (!ok) {
      if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
      for (cublasLtMatrixLayout_t l : {plan.a, plan.b, plan.c}) {
        if (l) cublasLtMatrixLayoutDestroy(l);
      }
      return nullptr;
    }
    plan.algo = result.algo;
    return &plans_.emplace(key, plan).first->second;
  }

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, Plan> plans_;
};

// TFLOP/s of the cuBLASLt FP8 GEMM at 8192³ (the FP8 tensor ceiling), median of 10.
double measure_fp8_gemm_flops(LtGemm& lt) {
  const int64_t n = 8192;
  DeviceBuffer<uint8_t> a(size_t(n * n)), b(size_t(n * n));
  DeviceBuffer<uint16_t> c(size_t(n * n));
  DSV4_CUDA_CHECK(cudaMemset(a.data(), 0x30, a.size()));
  DSV4_CUDA_CHECK(cudaMemset(b.data(), 0x30, b.size()));
  if (!lt.run(a.data(), b.data(), c.data(), n, n, n, nullptr)) fail("cuBLASLt: no FP8 GEMM");
  std::vector<double> ms;
  for (int i = 0; i < 10; ++i) {
    EventPair events;
    events.start(nullptr);
    lt.run(a.data(), b.data(), c.data(), n, n, n, nullptr);
    events.stop(nullptr);
    ms.push_back(events.milliseconds());
  }
  return 2.0 * double(n) * double(n) * double(n) / (median(ms) * 1e-3);
}

// A captured CUDA graph, replayed.
class Graph {
 public:
  template <class Enqueue>
  Graph(cudaStream_t stream, Enqueue enqueue) {
    DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    enqueue();
    cudaGraph_t graph = nullptr;
    DSV4_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph, 0));
    DSV4_CUDA_CHECK(cudaGraphDestroy(graph));
  }
  ~Graph() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void launch(cudaStream_t stream) const { DSV4_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

// Median milliseconds of `runs` replays cycling over the graphs, each behind a delay kernel.
double time_graphs(const std::vector<std::unique_ptr<Graph>>& graphs, int runs,
                   cudaStream_t stream) {
  for (const auto& g : graphs) g->launch(stream);  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    EventPair events;
    enqueue_gpu_delay(stream, 50.0);
    events.start(stream);
    graphs[size_t(i) % graphs.size()]->launch(stream);
    events.stop(stream);
    ms.push_back(events.milliseconds());
  }
  return median(ms);
}

// One routing sample: expert ids [tokens, k] on the host and the device, and the grouping.
struct Routing {
  std::vector<int32_t> counts;  // per expert (host)
  DeviceBuffer<int32_t> experts, device_counts, offsets, order, position;
  DeviceBuffer<float> weights;  // routing weights [tokens · k]
  DeviceBuffer<int32_t> tile_lists;
  ExpertTiles tiles;

  Routing(int64_t tokens, int64_t k, int64_t n_experts, bool skewed, std::mt19937_64& rng)
      : counts(size_t(n_experts), 0) {
    std::vector<int32_t> ids;
    for (int64_t t = 0; t < tokens; ++t) {
      std::set<int32_t> chosen;
      if (skewed) chosen.insert(0);
      while (int64_t(chosen.size()) < k) chosen.insert(int32_t(rng() % uint64_t(n_experts)));
      for (int32_t e : chosen) {
        ids.push_back(e);
        ++counts[size_t(e)];
      }
    }
    const int64_t slots = tokens * k;
    experts = DeviceBuffer<int32_t>(ids);
    device_counts = DeviceBuffer<int32_t>(size_t(n_experts));
    offsets = DeviceBuffer<int32_t>(size_t(n_experts + 1));
    order = DeviceBuffer<int32_t>(size_t(slots));
    position = DeviceBuffer<int32_t>(size_t(slots));
    weights = DeviceBuffer<float>(std::vector<float>(size_t(slots), 1.0f / float(k)));
    const int64_t narrow = expert_narrow_tiles_capacity(n_experts, slots);
    const int64_t wide = expert_wide_tiles_capacity(slots);
    tile_lists = DeviceBuffer<int32_t>(size_t(narrow + wide + 2));
    tiles = {tile_lists.data(), tile_lists.data() + narrow, tile_lists.data() + narrow + wide,
             narrow, wide};
  }
};

struct Case {
  const char* model;
  int64_t dim, inter, experts, k;
};

// One step's buffers for `tokens` tokens (the layer's inputs, its intermediates and output):
// x_codes / x_scales the tokens' quantized rows, codes / scales the grouped rows, then h.
struct StepBuffers {
  int64_t slots = 0;
  DeviceBuffer<uint16_t> x, gate_up, out;
  DeviceBuffer<uint8_t> x_codes, codes;
  DeviceBuffer<float> x_scales, scales;

  StepBuffers(const Case& c, int64_t tokens) : slots(tokens * c.k) {
    const int64_t rows = slots + kPad;
    x = DeviceBuffer<uint16_t>(size_t(rows * c.dim));
    gate_up = DeviceBuffer<uint16_t>(size_t(rows * 2 * c.inter));
    out = DeviceBuffer<uint16_t>(size_t(rows * c.dim));
    x_codes = DeviceBuffer<uint8_t>(size_t(rows * c.dim));
    x_scales = DeviceBuffer<float>(size_t(rows * c.dim / 128));
    codes = DeviceBuffer<uint8_t>(size_t(rows * std::max(c.dim, c.inter)));
    scales = DeviceBuffer<float>(size_t(rows * std::max(c.dim, c.inter) / 128));
    DSV4_CUDA_CHECK(cudaMemset(x.data(), 0x3c, x.size() * 2));  // bf16 ~1.0
    DSV4_CUDA_CHECK(cudaMemset(codes.data(), 0x30, codes.size()));
    DSV4_CUDA_CHECK(cudaMemset(x_codes.data(), 0x30, x_codes.size()));
  }
};

// kSamples routings of `tokens` tokens, and the mean count of experts they hit.
struct RoutingSamples {
  std::vector<std::unique_ptr<Routing>> routings;
  double experts_hit = 0.0;

  RoutingSamples(const Case& c, int64_t tokens, bool skewed, std::mt19937_64& rng) {
    for (int s = 0; s < kSamples; ++s) {
      routings.push_back(std::make_unique<Routing>(tokens, c.k, c.experts, skewed, rng));
      for (int32_t n : routings.back()->counts) experts_hit += n > 0 ? 1.0 : 0.0;
    }
    experts_hit /= kSamples;
  }
};

// Replays timed per row: fewer for the long prefill sizes.
int replays(int64_t tokens) {
  return tokens >= 1024 ? 5 : 20;
}

// The layer's kernels in the engine's order; enqueue_layer runs the first `kernels` of them.
constexpr const char* kChain[] = {"grouping", "quantization", "w1|w3", "SwiGLU", "w2"};
constexpr int kChainKernels = int(std::size(kChain));

void enqueue_layer(const Case& c, const DeviceMoe& moe, int64_t tokens, Routing& r, StepBuffers& b,
                   int kernels, bool separate_gather, cudaStream_t stream) {
  const int64_t dim = c.dim, inter = c.inter;
  const std::function<void()> steps[kChainKernels] = {
      [&] {
        moe_group(r.experts.data(), tokens, c.k, c.experts, r.device_counts.data(),
                  r.offsets.data(), r.order.data(), r.position.data(), &r.tiles, stream);
      },
      [&] {
        quantize_activations_fp8(b.x.data(), tokens, dim, b.x_codes.data(), b.x_scales.data(),
                                 stream);
      },
      [&] {
        if (!separate_gather) {
          moe_experts_gate_up(b.x_codes.data(), b.x_scales.data(), r.order.data(), r.offsets.data(),
                              r.tiles, tokens, c.k, moe.w13.view(), b.codes.data(), b.scales.data(),
                              b.gate_up.data(), stream);
          return;
        }
        moe_gather_quantized(b.x_codes.data(), b.x_scales.data(), r.order.data(), tokens, c.k, dim,
                             b.codes.data(), b.scales.data(), stream);
        expert_scaled_gemm(b.codes.data(), b.scales.data(), r.offsets.data(), tokens, r.tiles,
                           moe.w13.view(), {nullptr, b.gate_up.data()}, stream);
      },
      [&] {
        swiglu_quantize_fp8(b.gate_up.data(), 2 * inter, b.gate_up.data() + inter, 2 * inter,
                            b.slots, inter, r.weights.data(), r.order.data(), 10.0f, b.codes.data(),
                            b.scales.data(), stream);
      },
      [&] {
        expert_scaled_gemm(b.codes.data(), b.scales.data(), r.offsets.data(), tokens, r.tiles,
                           moe.w2.view(), {nullptr, b.out.data()}, stream);
      }};
  for (int i = 0; i < kernels; ++i) steps[i]();
}

// --breakdown: the time each kernel adds to the chain before it, uniform routing.
void print_breakdown(const Case& c, const DeviceMoe& moe, const std::vector<int64_t>& token_counts,
                     bool separate_gather, const Ceilings& ceil, std::mt19937_64& rng,
                     cudaStream_t stream) {
  const double w13_bytes = double(moe.w13.value_bytes + moe.w13.scale_bytes);
  const double w2_bytes = double(moe.w2.value_bytes + moe.w2.scale_bytes);
  for (const int64_t tokens : token_counts) {
    StepBuffers b(c, tokens);
    const RoutingSamples samples(c, tokens, false, rng);
    const double distinct = samples.experts_hit;
    double before = 0.0, us[kChainKernels];
    for (int kernels = 1; kernels <= kChainKernels; ++kernels) {
      std::vector<std::unique_ptr<Graph>> graphs;
      for (const auto& r : samples.routings) {
        graphs.push_back(std::make_unique<Graph>(stream, [&] {
          enqueue_layer(c, moe, tokens, *r, b, kernels, separate_gather, stream);
        }));
      }
      const double ms = time_graphs(graphs, replays(tokens), stream);
      us[kernels - 1] = (ms - before) * 1e3;
      before = ms;
    }
    const auto gemm = [&](double us_taken, double bytes) {
      const double tbps = distinct * bytes / (us_taken * 1e-6) / 1e12;
      return fmt::format("{:.1f} us ({:.2f} TB/s, {:.2f})", us_taken, tbps, tbps * 1e12 / ceil.hbm);
    };
    fmt::print("| {} | {} | {:.0f} | {:.1f} us | {:.1f} us | {} | {:.1f} us | {} | {:.1f} us |\n",
               c.model, tokens, distinct, us[0], us[1], gemm(us[2], w13_bytes), us[3],
               gemm(us[4], w2_bytes), before * 1e3);
  }
}

void run_model(const Case& c, const std::vector<int64_t>& token_counts, bool breakdown,
               bool separate_gather, const Ceilings& ceil, LtGemm& lt, std::mt19937_64& rng,
               cudaStream_t stream) {
  // One MoE layer of random MXFP4 experts, as `dsv4 bench` makes them.
  ModelConfig config = preset_config(c.model);
  config.layers = {config.layers[3]};
  config.n_layers = 1;
  config.n_mtp_layers = 0;
  config.validate();
  const DeviceWeights weights = random_device_weights(config, 20261130);
  const DeviceMoe& moe = weights.blocks[0].ffn;
  const int64_t dim = c.dim, inter = c.inter, n_experts = c.experts;
  if (config.dim != dim || moe.w13.count != n_experts || moe.w13.storage.rows != 2 * inter) {
    fail("moe bench: the {} preset is not the shape this bench describes", c.model);
  }
  if (breakdown) {
    print_breakdown(c, moe, token_counts, separate_gather, ceil, rng, stream);
    return;
  }
  // The baseline's FP8 experts (constant codes: cuBLASLt's speed does not depend on them).
  DeviceBuffer<uint8_t> fp8_w13(size_t(n_experts * 2 * inter * dim));
  DeviceBuffer<uint8_t> fp8_w2(size_t(n_experts * dim * inter));
  DSV4_CUDA_CHECK(cudaMemset(fp8_w13.data(), 0x30, fp8_w13.size()));
  DSV4_CUDA_CHECK(cudaMemset(fp8_w2.data(), 0x30, fp8_w2.size()));
  const double expert_bytes =
      double(moe.w13.value_bytes + moe.w13.scale_bytes + moe.w2.value_bytes + moe.w2.scale_bytes);

  for (const int64_t tokens : token_counts) {
    StepBuffers b(c, tokens);
    const int64_t slots = b.slots;
    for (const bool skewed : {false, true}) {
      const RoutingSamples samples(c, tokens, skewed, rng);
      std::vector<std::unique_ptr<Graph>> ours, baseline;
      bool baseline_ok = true;
      for (const auto& sample : samples.routings) {
        Routing& r = *sample;
        ours.push_back(std::make_unique<Graph>(stream, [&] {
          enqueue_layer(c, moe, tokens, r, b, kChainKernels, separate_gather, stream);
        }));
        baseline.push_back(std::make_unique<Graph>(stream, [&] {
          int64_t first = 0;
          for (int64_t e = 0; e < n_experts; ++e) {
            const int64_t n = r.counts[size_t(e)];
            if (n == 0) continue;
            const int64_t padded = (n + kPad - 1) / kPad * kPad;
            baseline_ok &=
                lt.run(fp8_w13.data() + e * 2 * inter * dim, b.codes.data() + first * dim,
                       b.gate_up.data() + first * 2 * inter, 2 * inter, dim, padded, stream);
            baseline_ok &= lt.run(fp8_w2.data() + e * dim * inter, b.codes.data() + first * inter,
                                  b.out.data() + first * dim, dim, inter, padded, stream);
            first += n;
          }
        }));
      }
      const double ms = time_graphs(ours, replays(tokens), stream);
      const double lt_ms = baseline_ok ? time_graphs(baseline, replays(tokens), stream) : 0.0;
      const double seconds = ms * 1e-3;
      const double bytes =
          samples.experts_hit * expert_bytes + double(slots) * double(dim) * (1.0 + 2.0);
      const double flops = 6.0 * double(slots) * double(inter) * double(dim);
      const double floor = std::max(bytes / ceil.hbm, flops / ceil.fp8);
      fmt::print("| {} | {} | {} | {:.0f} | {:.1f} us | {:.2f} | {:.1f} | {:.3f} | {} | {} |\n",
                 c.model, skewed ? "skewed" : "uniform", tokens, samples.experts_hit, ms * 1e3,
                 bytes / seconds / 1e12, flops / seconds / 1e12, floor / seconds,
                 baseline_ok ? fmt::format("{:.1f} us", lt_ms * 1e3) : std::string("no algorithm"),
                 baseline_ok ? fmt::format("{:.2f}x", lt_ms / ms) : std::string("-"));
    }
  }
}

// "1,64,4096" → {1, 64, 4096}; anything else (empty items, non-digits, 0) is refused.
std::vector<int64_t> parse_token_counts(const std::string& list) {
  std::vector<int64_t> counts;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, end - start);
    if (item.empty() || item.size() > 6 ||
        item.find_first_not_of("0123456789") != std::string::npos || std::stoll(item) == 0) {
      fail("--tokens: '{}' is not a positive token count (expected e.g. 1,64,4096)", item);
    }
    counts.push_back(std::stoll(item));
    start = end + 1;
  }
  return counts;
}

}  // namespace
}  // namespace dsv4::cuda

int main(int argc, char** argv) {
  using namespace dsv4::cuda;
  try {
    std::vector<int64_t> tokens{1, 4, 8, 16, 64, 256, 1024, 4096, 8192};
    bool breakdown = false, separate_gather = false;
    bool usage_ok = true;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--quick") == 0) {
        tokens = {1, 64};
      } else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
        tokens = parse_token_counts(argv[++i]);
      } else if (std::strcmp(argv[i], "--breakdown") == 0) {
        breakdown = true;
      } else if (std::strcmp(argv[i], "--separate-gather") == 0) {
        separate_gather = true;
      } else {
        usage_ok = false;
      }
    }
    if (!usage_ok) {
      fmt::print(stderr,
                 "usage: dsv4_moe_bench [--quick | --tokens N[,N...]] [--breakdown] "
                 "[--separate-gather]\n");
      return 2;
    }
    if (device_count() == 0) {
      fmt::print(stderr, "dsv4_moe_bench: no CUDA device\n");
      return 1;
    }
    cudaStream_t stream = nullptr;
    DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    LtGemm lt;
    Ceilings ceil;
    ceil.hbm = measure_hbm_read_bandwidth();
    ceil.fp8 = measure_fp8_gemm_flops(lt);
    fmt::print("{}; ceilings: HBM read {:.2f} TB/s, cuBLASLt FP8 GEMM 8192^3 {:.0f} TFLOP/s\n\n",
               device_description(0), ceil.hbm / 1e12, ceil.fp8 / 1e12);
    if (breakdown) {
      fmt::print(
          "| model | tokens | experts hit | {} | {} | {} (TB/s, ÷ HBM) | {} | {} (TB/s, ÷ HBM) | "
          "layer |\n|---|---|---|---|---|---|---|---|---|\n",
          kChain[0], kChain[1], kChain[2], kChain[3], kChain[4]);
    } else {
      fmt::print(
          "| model | routing | tokens | experts hit | time | TB/s | TFLOP/s | ÷ roofline | "
          "cuBLASLt FP8 GEMMs | speed-up over cuBLASLt |\n");
      fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
    }
    std::mt19937_64 rng(20261130);
    for (const Case& c : {Case{"flash", 4096, 2048, 256, 6}, Case{"pro", 7168, 3072, 384, 6}}) {
      run_model(c, tokens, breakdown, separate_gather, ceil, lt, rng, stream);
    }
    DSV4_CUDA_CHECK(cudaStreamDestroy(stream));
  } catch (const std::exception& e) {
    fmt::print(stderr, "dsv4_moe_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
