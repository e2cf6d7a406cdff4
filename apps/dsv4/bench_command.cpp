// `dsv4 bench`: decode-step latency of the CUDA backend on real DeepSeek-V4 layer shapes with
// random weights generated on the GPU (a slice of the Flash or Pro layer schedule), at the given
// batch sizes and context lengths, against the bytes a step must read and the HBM read
// bandwidth measured in the same run (PERFORMANCE.md, "whole decode step").
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/kv_row.h"
#include "model/config.h"
#include "model/synthetic_random.h"

#ifdef DSV4_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/dense_attention_rows.h"
#include "cuda/model/device_weights.h"
#include "cuda/model/random_weights.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/gpu_timer.h"
#include "cuda/runtime/hbm_bandwidth.h"
#endif

namespace dsv4::cli {
namespace {

struct BenchOptions {
  std::string model, batch = "1,64", context = "4096,65536", backend = "cuda";
  int64_t layers = 4, first_layer = -1;
  int32_t steps = 20, warmup = 3;
  uint64_t seed = 1;
  bool markdown = false;
  bool fp8_hca_entries_only = false;  // no bf16 copies of HCA entries (CudaModelLimits)
};

#ifdef DSV4_HAVE_CUDA

// The benchmarked model: `count` consecutive layers of a preset from `first`.
struct LayerSlice {
  std::string preset;  // "flash" | "pro"
  ModelConfig config;
  int64_t first = 0, count = 0, total = 0;

  std::string range() const {
    return fmt::format("layers {}-{} of {}", first, first + count - 1, total);
  }
  std::string kinds() const {
    std::string out;
    for (int64_t i = 0; i < count; ++i) {
      const LayerSpec& l = config.layers[size_t(i)];
      out += fmt::format("{}{}:{}/{}", i ? " " : "", first + i, attention_kind_name(l.attention),
                         l.hash_routing ? "hash" : "score");
    }
    return out;
  }
};

// Layer 2 onward by default: CSA and HCA alternate there (41 of the 43 / 61 layers are CSA or
// HCA) and layer 2 is still hash-routed, so four layers show every kind the per-layer average
// is made of; layers 0-1 (window only in Flash) are reached with --first-layer 0.
LayerSlice slice_preset(const std::string& model, int64_t first, int64_t count) {
  const std::string prefix = "synthetic:";
  const std::string preset = model.rfind(prefix, 0) == 0 ? model.substr(prefix.size()) : "";
  if (preset != "flash" && preset != "pro") {
    fail(
        "--model: dsv4 bench runs synthetic:flash or synthetic:pro (random weights of the real "
        "shapes), not '{}'",
        model);
  }
  LayerSlice s{preset, preset_config(preset), first, count, 0};
  s.total = s.config.n_layers;
  if (count <= 0 || count > s.total) fail("--layers: {} is not in [1, {}]", count, s.total);
  if (s.first < 0) s.first = count + 2 <= s.total ? 2 : 0;
  if (s.first + count > s.total) {
    fail("--first-layer {} + --layers {} exceeds the {} layers of {}", s.first, count, s.total,
         preset);
  }
  const auto begin = s.config.layers.begin() + std::ptrdiff_t(s.first);
  s.config.layers.assign(begin, begin + std::ptrdiff_t(count));
  s.config.n_layers = count;
  s.config.n_mtp_layers = 0;
  s.config.source = fmt::format("synthetic:{} {}", preset, s.range());
  s.config.validate();
  return s;
}

std::vector<int64_t> parse_positive_list(const std::string& text, const std::string& option) {
  std::vector<int64_t> out;
  for (const int32_t v : parse_id_list(text, option)) {
    if (v <= 0) fail("{}: {} is not positive", option, v);
    out.push_back(v);
  }
  return out;
}

constexpr double kMB = 1e6;
constexpr double kGiB = double(size_t(1) << 30);
// Keeps the GPU busy while the host enqueues a timed step, so its events time only the GPU.
constexpr double kStepDelayUs = 1000.0;
// Allowance for the model's scratch buffers and the CUDA context, on top of weights and cache.
constexpr double kScratchBytes = 1.5 * kGiB;

// Bytes one decode step must read: weights actually touched and the attention state attended.
struct StepBytes {
  double weights = 0, experts = 0, kv = 0;
  double total() const { return weights + experts + kv; }
};

// The traffic model of a decode step, from the device weights' sizes. Every non-routed weight
// is read once per step (whatever the batch); routed experts count by the expected number of
// distinct experts B tokens touch under uniform routing, E·(1 − (1 − k/E)^B) per layer; KV per
// sequence and layer: the window rows, the top-k selected compressed rows plus every index key
// (CSA) or every compressed row (HCA). Activations, KV writes and the logits are left out.
struct TrafficModel {
  double dense = 0;            // every weight but routed experts: layers, head, norms
  std::vector<double> expert;  // per layer: one routed expert's w13 + w2 bytes
  std::vector<int64_t> expert_count;
  double per_token = 0;  // embedding row + the hash tables' rows

  StepBytes step(const ModelConfig& c, int64_t batch, int64_t context) const {
    StepBytes b;
    b.weights = dense + per_token * double(batch);
    const double k = double(c.n_activated_experts);
    for (size_t l = 0; l < expert.size(); ++l) {
      const double e = double(expert_count[l]);
      b.experts += expert[l] * e * (1.0 - std::pow(1.0 - k / e, double(batch)));
    }
    const double row = double(KvRowFormat{size_t(c.head_dim), size_t(c.rope_head_dim)}.bytes());
    const double key = double(IndexKeyFormat{size_t(c.index_head_dim)}.bytes());
    const int64_t position = context;  // the decoded token's position; it sees [0, position]
    for (const LayerSpec& l : c.layers) {
      double rows = double(std::min(c.window_size, position + 1));
      double keys = 0;
      if (l.compress_ratio > 0) {
        const int64_t entries = (position + 1) / l.compress_ratio;
        if (l.attention == AttentionKind::kCompressedSparse) {
          rows += double(std::min(c.index_topk, entries));
          keys = double(entries);
        } else {
          rows += double(entries);
        }
      }
      b.kv += (rows * row + keys * key) * double(batch);
    }
    return b;
  }
};

double f32_bytes(const cuda::DeviceBuffer<float>& b) {
  return double(b.size() * sizeof(float));
}
double hc_bytes(const cuda::DeviceHc& h) {
  return f32_bytes(h.fn) + f32_bytes(h.base) + f32_bytes(h.scale);
}
double compressor_bytes(const cuda::DeviceCompressor& c) {
  return double(c.wkv.bytes() + c.wgate.bytes()) + f32_bytes(c.ape) + f32_bytes(c.norm);
}

TrafficModel traffic_model(const ModelConfig& c, const cuda::DeviceWeights& w) {
  TrafficModel t;
  t.dense = double(w.head.bytes()) + f32_bytes(w.norm) + hc_bytes(w.hc_head);
  t.per_token = double(c.dim) * 2.0;
  for (size_t l = 0; l < w.blocks.size(); ++l) {
    const cuda::DeviceBlock& b = w.blocks[l];
    const cuda::DeviceAttention& a = b.attn;
    double bytes =
        f32_bytes(b.attn_norm) + f32_bytes(b.ffn_norm) + hc_bytes(b.hc_attn) + hc_bytes(b.hc_ffn);
    bytes +=
        double(a.wq_a.bytes() + a.wq_b.bytes() + a.wkv.bytes() + a.wo_a.bytes() + a.wo_b.bytes()) +
        f32_bytes(a.q_norm) + f32_bytes(a.kv_norm) + f32_bytes(a.attn_sink);
    if (a.compressor) bytes += compressor_bytes(*a.compressor);
    if (a.indexer) {
      bytes += double(a.indexer->wq_b.bytes() + a.indexer->weights_proj.bytes()) +
               compressor_bytes(a.indexer->compressor);
    }
    const cuda::DeviceMoe& m = b.ffn;
    bytes += double(m.gate.bytes()) + f32_bytes(m.gate_bias) +
             double(m.shared.w13.bytes() + m.shared.w2.bytes());
    t.dense += bytes;
    if (c.layers[l].hash_routing) t.per_token += double(c.n_activated_experts) * 4.0;
    t.expert.push_back(
        double(m.w13.value_bytes + m.w13.scale_bytes + m.w2.value_bytes + m.w2.scale_bytes));
    t.expert_count.push_back(m.w13.count);
  }
  return t;
}

// The KV cache CudaModel allocates: its pools, sized as the model sizes them.
double kv_cache_bytes(const ModelConfig& c, int64_t max_length, int64_t sequences,
                      bool hca_copies) {
  const cuda::KvCacheConfig kc = cuda::kv_cache_config_every_slot_full(
      c, int32_t(sequences), max_length, 64, hca_copies && cuda::dense_attention_applies(c));
  const double row = double(KvRowFormat{size_t(kc.head_dim), size_t(kc.rope_dim)}.bytes());
  const double key = double(IndexKeyFormat{size_t(kc.index_dim)}.bytes());
  const double copy = 2.0 * double(kc.head_dim);
  return double(kc.block_rows) * (double(kc.kv_blocks) * row + double(kc.index_blocks) * key +
                                  double(kc.dense_entry_blocks) * copy);
}

struct Row {
  int64_t batch = 0, context = 0;
  double step_ms = 0, back_to_back_ms = 0;
  StepBytes bytes;
  bool finite = true;
};

// Decode steps of `batch` sequences at `context` tokens: warm-up (captures the graph), `steps`
// steps each timed alone behind a delay kernel (median), then `steps` back to back (mean,
// includes any host gap between steps).
Row measure(cuda::CudaModel& model, const BenchOptions& o, const TrafficModel& traffic,
            int64_t batch, int64_t context) {
  const ModelConfig& c = model.config();
  const cudaStream_t stream = model.stream();
  std::vector<int32_t> slots;
  for (int64_t b = 0; b < batch; ++b) {
    slots.push_back(model.admit());
    model.fill_random_context(slots.back(), context, derive_seed(o.seed, uint64_t(b)));
  }
  std::mt19937_64 rng(derive_seed(o.seed, "ids") + uint64_t(batch * 1000003 + context));
  std::uniform_int_distribution<int32_t> vocab(0, int32_t(c.vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(batch));
  std::vector<cuda::CudaModel::Chunk> chunks(static_cast<size_t>(batch));
  const auto decode = [&] {
    for (size_t b = 0; b < size_t(batch); ++b) {
      ids[b] = vocab(rng);
      chunks[b] = {slots[b], {&ids[b], 1}};
    }
    model.step(chunks);
  };
  for (int32_t i = 0; i < o.warmup; ++i) decode();
  DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));

  std::vector<cuda::EventPair> alone(static_cast<size_t>(o.steps));
  for (cuda::EventPair& e : alone) {
    cuda::enqueue_gpu_delay(stream, kStepDelayUs);
    e.start(stream);
    decode();
    e.stop(stream);
  }
  std::vector<double> ms;
  for (const cuda::EventPair& e : alone) ms.push_back(e.milliseconds());
  cuda::EventPair run;
  cuda::enqueue_gpu_delay(stream, kStepDelayUs);
  run.start(stream);
  for (int32_t i = 0; i < o.steps; ++i) decode();
  run.stop(stream);

  Row row;
  row.batch = batch;
  row.context = context;
  row.step_ms = cuda::median(ms);
  row.back_to_back_ms = run.milliseconds() / double(o.steps);
  row.bytes = traffic.step(c, batch, context);
  std::vector<float> logits(size_t(batch * c.vocab_size));
  DSV4_CUDA_CHECK(cudaMemcpy(logits.data(), model.logits(), logits.size() * sizeof(float),
                             cudaMemcpyDeviceToHost));
  row.finite = std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); });
  for (const int32_t slot : slots) model.release(slot);
  return row;
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[16] = {};
  std::strftime(text, sizeof(text), "%Y-%m-%d", std::gmtime(&now));
  return text;
}

void print_header() {
  fmt::print("{:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>6} {:>6}\n", "batch",
             "context", "step ms", "ms/layer", "tok/s", "b2b ms", "weightMB", "expertMB", "kvMB",
             "totalMB", "TB/s", "%HBM");
}

void print_row(const LayerSlice& s, const Row& r, double read_bw) {
  const double achieved = r.bytes.total() / (r.step_ms * 1e-3);
  fmt::print(
      "{:>5} {:>7} {:>9.3f} {:>9.3f} {:>9.1f} {:>9.3f} {:>9.1f} {:>9.1f} {:>8.1f} {:>9.1f} "
      "{:>6.2f} {:>5.1f}%{}\n",
      r.batch, r.context, r.step_ms, r.step_ms / double(s.count),
      double(r.batch) / (r.step_ms * 1e-3), r.back_to_back_ms, r.bytes.weights / kMB,
      r.bytes.experts / kMB, r.bytes.kv / kMB, r.bytes.total() / kMB, achieved / 1e12,
      100.0 * achieved / read_bw, r.finite ? "" : "  NON-FINITE LOGITS");
  std::fflush(stdout);
}

void print_markdown(const LayerSlice& s, const std::vector<Row>& rows, const std::string& device,
                    double read_bw, double copy_bw, int32_t steps) {
  fmt::print("\n## {} — {}, whole decode step (`dsv4 bench`)\n\n", today(), device);
  fmt::print(
      "Method: random weights of the real shapes ({}: {}), random valid KV at the given context; "
      "CUDA events around each decode step (graph replay) queued behind a delay kernel, median "
      "of {}; ms/layer = step / {} layers, embedding and LM head included. Bytes = every "
      "non-expert weight + expected distinct routed experts E·(1−(1−k/E)^B) + KV (window + "
      "top-k or all compressed rows + index keys). Ceilings measured in the same run: HBM read "
      "{:.2f} TB/s, D2D copy {:.2f} TB/s.\n\n",
      s.range(), s.kinds(), steps, s.count, read_bw / 1e12, copy_bw / 1e12);
  fmt::print(
      "| model | layers | batch | context | step | per layer | tok/s | bytes read | achieved | "
      "÷ HBM read |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double achieved = r.bytes.total() / (r.step_ms * 1e-3);
    fmt::print(
        "| {} | {} ({}) | {} | {} | {:.3f} ms | {:.3f} ms | {:.1f} | {:.1f} MB | {:.2f} "
        "TB/s | {:.2f} |\n",
        s.preset, s.range(), s.kinds(), r.batch, r.context, r.step_ms, r.step_ms / double(s.count),
        double(r.batch) / (r.step_ms * 1e-3), r.bytes.total() / kMB, achieved / 1e12,
        achieved / read_bw);
  }
}

void run_bench(const BenchOptions& o) {
  if (cuda::device_count() == 0) fail("dsv4 bench: no CUDA GPU is visible on this machine");
  if (o.steps <= 0 || o.warmup < 0) fail("--steps must be positive and --warmup not negative");
  const LayerSlice s = slice_preset(o.model, o.first_layer, o.layers);
  const std::vector<int64_t> batches = parse_positive_list(o.batch, "--batch");
  const std::vector<int64_t> contexts = parse_positive_list(o.context, "--context");
  const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
  const int64_t max_context = *std::max_element(contexts.begin(), contexts.end());
  const int64_t max_length = max_context + o.warmup + 2 * int64_t(o.steps) + 1;
  if (max_length > s.config.max_seq_len) {
    fail("--context: {} tokens plus the decoded ones exceed the model's {}", max_context,
         s.config.max_seq_len);
  }
  const std::string device = cuda::device_description(0);
  fmt::print("device: {}\nmodel: synthetic:{} {} ({}), seed {}\n", device, s.preset, s.range(),
             s.kinds(), o.seed);

  // The ceilings first, while the 2 GiB buffers still fit.
  const double read_bw = cuda::measure_hbm_read_bandwidth();
  const double copy_bw = cuda::measure_d2d_copy_bandwidth();
  fmt::print("HBM read {:.3f} TB/s, D2D copy (read + write) {:.3f} TB/s (2 GiB, median of {})\n",
             read_bw / 1e12, copy_bw / 1e12, cuda::kBandwidthRuns);
  std::fflush(stdout);

  size_t free_bytes = 0, total_bytes = 0;
  DSV4_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const double weights = double(cuda::random_device_weights_bytes(s.config));
  const double cache = kv_cache_bytes(s.config, max_length, max_batch, !o.fp8_hca_entries_only);
  if (weights + cache + kScratchBytes > double(free_bytes)) {
    fail(
        "dsv4 bench: {} layers need {:.1f} GiB of weights + {:.1f} GiB of KV cache ({} "
        "sequences of {} tokens) + ~{:.1f} GiB scratch, but {:.1f} GiB of {:.1f} GiB are free; "
        "use fewer --layers, a smaller --batch or --context",
        s.count, weights / kGiB, cache / kGiB, max_batch, max_length, kScratchBytes / kGiB,
        double(free_bytes) / kGiB, double(total_bytes) / kGiB);
  }
  cuda::DeviceWeights w = cuda::random_device_weights(s.config, o.seed);
  const TrafficModel traffic = traffic_model(s.config, w);
  cuda::CudaModelLimits limits{int32_t(max_batch), max_batch, max_length};
  limits.dense_hca_decode = !o.fp8_hca_entries_only;
  cuda::CudaModel model(s.config, std::move(w), limits);
  fmt::print(
      "weights {:.2f} GiB, KV cache ~{:.2f} GiB; ms/layer = step / {} layers (embedding "
      "and LM head included); b2b = mean of {} steps back to back\n",
      weights / kGiB, cache / kGiB, s.count, o.steps);
  std::fflush(stdout);

  std::vector<Row> rows;
  print_header();
  for (const int64_t batch : batches) {
    for (const int64_t context : contexts) {
      rows.push_back(measure(model, o, traffic, batch, context));
      print_row(s, rows.back(), read_bw);
    }
  }
  if (o.markdown) print_markdown(s, rows, device, read_bw, copy_bw, o.steps);
  for (const Row& r : rows) {
    if (!r.finite)
      fail("dsv4 bench: non-finite logits at batch {}, context {}", r.batch, r.context);
  }
}

#endif  // DSV4_HAVE_CUDA

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  app.add_option("--model", o->model, "synthetic:flash or synthetic:pro")->required();
  app.add_option("--layers", o->layers, "Layers to build (consecutive, of the real schedule)");
  app.add_option("--first-layer", o->first_layer,
                 "First layer of the slice (default 2: CSA/HCA alternating, one hash-routed)");
  app.add_option("--batch", o->batch, "Comma-separated batch sizes (sequences per step)");
  app.add_option("--context", o->context, "Comma-separated context lengths (tokens)");
  app.add_option("--steps", o->steps, "Timed decode steps per row (median)");
  app.add_option("--warmup", o->warmup, "Untimed decode steps per row first");
  app.add_option("--seed", o->seed, "Seed of the random weights, context and token ids");
  app.add_option("--backend", o->backend, "cuda (the only one benchmarked)");
  app.add_flag("--markdown", o->markdown, "Also print the rows as a bench/RESULTS.md section");
  app.add_flag("--fp8-hca-entries-only", o->fp8_hca_entries_only,
               "Keep no bf16 copies of HCA entries (decode reads the FP8 rows, as before)");
  return [o] {
    if (o->backend != "cuda") fail("--backend: dsv4 bench runs the cuda backend only");
#ifdef DSV4_HAVE_CUDA
    run_bench(*o);
#else
    fail("dsv4 bench: this build has no CUDA support (nvcc was not found when it was built)");
#endif
  };
}

}  // namespace dsv4::cli
