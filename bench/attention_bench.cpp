// dsv4_attention_bench: the sparse attention kernels on Flash (64 heads, top-k 512) and Pro
// (128 heads, top-k 1024) shapes, d = 512, window 128, FP8 KV rows of 584 bytes: decode at
// batch 1-256 over CSA lists and HCA with 1K and 8K entries, and prefill chunks of 4096 and 256
// tokens at 64K context and (full runs) of 4096 tokens deep into long prompts: HCA at 256K and
// 1M, CSA at 1M (its lists then spread over 256K entries). The ceilings are measured in the same
// run (HBM read stream; a cuBLAS BF16 GEMM at 8192³ as the tensor peak) and every row prints
// achieved ÷ roofline, the roofline being the larger of FLOPs / BF16 peak and bytes / HBM bandwidth
// (PERFORMANCE.md). FLOPs count Q·Kᵀ and P·V once (4·heads·rows·512 per token); bytes are the
// distinct KV rows plus Q and the output. Inputs rotate over groups of sequences so that each
// launch reads at least 2x L2 where the batch allows. Decode over HCA also runs from the entries'
// bf16 copies (as the CUDA model does), credited with the same bytes: the roofline stays the FP8
// rows' (the copies read 1 KB an entry). Usage: dsv4_attention_bench [--quick] (one batch per case,
// for smoke tests).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/formats.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/dense_rows_layout.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/sparse_attention.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/device_buffer.h"
#include "cuda/runtime/gpu_timer.h"
#include "cuda/runtime/hbm_bandwidth.h"

namespace dsv4::cuda {
namespace {

constexpr int kDim = 512, kRope = 64, kWindow = 128, kRuns = 20;
constexpr double kRotateBytes = 120e6;  // > 2x the 50-60 MB L2

double measure_bf16_gemm_flops() {
  const int n = 8192;
  DeviceBuffer<uint16_t> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  DSV4_CUDA_CHECK(cudaMemset(a.data(), 0x3c, a.size() * 2));
  DSV4_CUDA_CHECK(cudaMemset(b.data(), 0x3c, b.size() * 2));
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: no handle");
  const float one = 1.0f, zero = 0.0f;
  const auto gemm = [&] {
    if (cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(), CUDA_R_16BF, n,
                     b.data(), CUDA_R_16BF, n, &zero, c.data(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
      fail("cuBLAS: BF16 GEMM failed");
    }
  };
  gemm();
  std::vector<double> ms;
  for (int i = 0; i < 10; ++i) {
    EventPair events;
    events.start(nullptr);
    gemm();
    events.stop(nullptr);
    ms.push_back(events.milliseconds());
  }
  cublasDestroy(handle);
  return 2.0 * n * double(n) * n / (median(ms) * 1e-3);
}

// A KV cache of `sequences` slots at `length` tokens, every row a valid encoded random row; HCA
// entries also as their bf16 copies.
struct FilledCache {
  std::unique_ptr<KvCache> cache;
  std::vector<int32_t> slots;
  FilledCache(int32_t sequences, int32_t ratio, int64_t length, std::mt19937_64& rng) {
    KvCacheConfig config;
    config.layers = {{ratio, false}};
    config.max_sequences = sequences;
    config.max_length = length;
    config.kv_blocks = int64_t(sequences) * (2 + (length / ratio + 63) / 64);
    config.dense_entry_blocks = ratio > 4 ? int64_t(sequences) * ((length / ratio + 63) / 64) : 0;
    cache = std::make_unique<KvCache>(config);
    for (int32_t i = 0; i < sequences; ++i) {
      slots.push_back(cache->admit(nullptr));
      cache->reserve(slots.back(), length, nullptr);
    }
    const KvRowFormat format{size_t(kDim), size_t(kRope)};
    std::normal_distribution<float> normal;
    std::vector<uint8_t> pattern(512 * format.bytes());
    std::vector<float> row(kDim);
    for (int r = 0; r < 512; ++r) {
      for (int i = 0; i < kDim; ++i)
        row[size_t(i)] = i < kDim - kRope ? normal(rng) : round_bf16(normal(rng));
      format.encode(row.data(), pattern.data() + size_t(r) * format.bytes());
    }
    uint8_t* pool = cache->window_rows(0).pool;
    const size_t pool_bytes = size_t(config.kv_blocks) * 64 * format.bytes();
    size_t filled = std::min(pattern.size(), pool_bytes);
    DSV4_CUDA_CHECK(cudaMemcpy(pool, pattern.data(), filled, cudaMemcpyHostToDevice));
    while (filled < pool_bytes) {
      const size_t n = std::min(filled, pool_bytes - filled);
      DSV4_CUDA_CHECK(cudaMemcpy(pool + filled, pool, n, cudaMemcpyDeviceToDevice));
      filled += n;
    }
    const PagedRowsView copies = cache->dense_entry_rows(0);
    if (copies.pool) {
      for (int32_t slot : slots) {
        copy_rows_as_bf16(cache->entry_rows(0), copies, slot, length / ratio, kDim, kRope, nullptr);
      }
    }
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  }
};

struct DeviceTokens {
  DeviceBuffer<int32_t> slot, position, begin, end;
  TokenBatchView view;
  std::vector<int32_t> host_position, host_begin, host_end;
  // One chunk of `count` tokens per slot, starting at `start`.
  DeviceTokens(const std::vector<int32_t>& slots, int32_t start, int32_t count) {
    std::vector<int32_t> s, p, b, e;
    for (int32_t sequence_slot : slots) {
      const auto first = int32_t(s.size());
      for (int32_t i = 0; i < count; ++i) {
        s.push_back(sequence_slot);
        p.push_back(start + i);
        b.push_back(first);
        e.push_back(first + count);
      }
    }
    slot = DeviceBuffer<int32_t>(s);
    position = DeviceBuffer<int32_t>(p);
    begin = DeviceBuffer<int32_t>(b);
    end = DeviceBuffer<int32_t>(e);
    view = {int32_t(s.size()), slot.data(), position.data(), begin.data(), end.data()};
    host_position = std::move(p);
    host_begin = std::move(b);
    host_end = std::move(e);
  }
};

struct Ceilings {
  double hbm = 0, bf16 = 0;
};

struct Case {
  std::string model, kind;
  int heads, topk;
  CompressedSource source;
  int ratio;
  int64_t position;  // of the (first) query token
  int chunk;         // tokens per sequence: 1 = decode
};

// How a call reads its rows.
enum class Rows { kMain, kDense, kDenseEntryCopies };

// One table row: TFLOP/s, TB/s and achieved ÷ roofline of a measured call.
void report(const Case& c, Rows how, int batch, int32_t tokens, double rows, double seconds,
            int32_t visible, int row_bytes, const Ceilings& ceil) {
  // Prefill: one token's rows overlap its neighbours'; the distinct rows are the window span
  // plus the entries, at most all visible ones.
  const double distinct_rows =
      c.chunk == 1 ? double(tokens) * rows
                   : std::min(double(tokens) * rows, double(c.chunk + kWindow) + visible);
  const double bytes = distinct_rows * row_bytes + 2.0 * tokens * c.heads * kDim * 2;
  const double flops = 4.0 * tokens * c.heads * double(rows) * kDim;
  const double floor = std::max(flops / ceil.bf16, bytes / ceil.hbm);
  fmt::print("| {} | {}{} | {} | {} | {} | {:.1f} us | {:.0f} | {:.2f} | {:.3f} |\n", c.model,
             c.kind,
             how == Rows::kDense              ? ", dense rows"
             : how == Rows::kDenseEntryCopies ? ", dense rows, bf16 entry copies"
                                              : "",
             batch, tokens, rows, seconds * 1e6, flops / seconds / 1e12, bytes / seconds / 1e12,
             floor / seconds);
}

void run_case(const Case& c, const std::vector<int>& batches, const Ceilings& ceil,
              std::mt19937_64& rng) {
  const int ratio = c.source == CompressedSource::kList ? 4 : c.ratio;
  const int32_t max_batch = *std::max_element(batches.begin(), batches.end());
  const int64_t length = c.position + c.chunk;
  const auto visible = int32_t(length / ratio);
  const int32_t sequences = c.chunk > 1 ? 1 : std::max(max_batch, 256);
  FilledCache filled(sequences, ratio, length, rng);
  const int row_bytes = filled.cache->kv_row_bytes();
  const int32_t max_tokens = max_batch * c.chunk;
  std::vector<uint16_t> q_host(size_t(max_tokens) * c.heads * kDim);
  std::normal_distribution<float> normal;
  for (uint16_t& v : q_host) v = float_to_bf16(normal(rng));
  DeviceBuffer<uint16_t> q(q_host), out(q_host.size());
  DeviceBuffer<float> sink(std::vector<float>(size_t(c.heads), 0.5f));
  // This step's rows: the pool's first rows (valid encoded rows), repeated.
  std::vector<uint8_t> chunk_host(size_t(max_tokens) * row_bytes);
  const size_t sample = std::min(chunk_host.size(), size_t(64) * row_bytes);
  DSV4_CUDA_CHECK(cudaMemcpy(chunk_host.data(), filled.cache->window_rows(0).pool, sample,
                             cudaMemcpyDeviceToHost));
  for (size_t i = sample; i < chunk_host.size(); ++i) chunk_host[i] = chunk_host[i % sample];
  DeviceBuffer<uint8_t> chunk_rows(chunk_host);
  std::vector<int32_t> list_host(size_t(std::max(1, max_tokens * c.topk)), -1);
  if (c.source == CompressedSource::kList) {
    for (int32_t t = 0; t < max_tokens; ++t) {
      const int32_t sees = int32_t((c.position + t % c.chunk + 1) / 4);
      for (int i = 0; i < std::min(c.topk, sees); ++i) {
        list_host[size_t(t) * c.topk + i] = int32_t(rng() % uint64_t(sees));
      }
    }
  }
  DeviceBuffer<int32_t> list(list_host);
  const auto max_rows = int32_t(kWindow + (c.source == CompressedSource::kList ? c.topk : visible));
  DeviceBuffer<float> workspace(sparse_attention_workspace_bytes(max_tokens, c.heads, max_rows) /
                                4);

  for (int batch : batches) {
    const int32_t tokens = batch * c.chunk;
    // Rows of the first token (a prefill chunk's later tokens see as many or slightly more).
    const auto rows =
        double(std::min<int64_t>(kWindow, c.position + 1) +
               (c.source == CompressedSource::kList ? c.topk : (c.position + 1) / ratio));
    const double per_launch = double(tokens) * rows * row_bytes;
    const int groups = std::max(1, std::min(sequences / batch, int(kRotateBytes / per_launch) + 1));
    std::vector<std::unique_ptr<DeviceTokens>> group_tokens;
    for (int g = 0; g < groups; ++g) {
      std::vector<int32_t> slots(filled.slots.begin() + g * batch,
                                 filled.slots.begin() + (g + 1) * batch);
      group_tokens.push_back(std::make_unique<DeviceTokens>(slots, int32_t(c.position), c.chunk));
    }
    SparseAttentionArgs a;
    a.q = q.data();
    a.sink = sink.data();
    a.out = out.data();
    a.heads = c.heads;
    a.head_dim = kDim;
    a.rope_dim = kRope;
    a.scale = float(1.0 / std::sqrt(double(kDim)));
    a.window = kWindow;
    a.chunk_rows = chunk_rows.data();
    a.ring = filled.cache->window_rows(0);
    a.source = c.source;
    a.entries = filled.cache->entry_rows(0);
    a.list = list.data();
    a.list_stride = c.topk;
    a.list_len = c.source == CompressedSource::kList ? c.topk : 0;
    a.ratio = ratio;
    a.max_rows = max_rows;
    a.workspace = workspace.data();
    a.workspace_bytes = workspace.size() * 4;
    // Prefill also from dense rows (dequantized once per call, the pass timed with the kernel);
    // HCA decode from regions of window rows and the entries' bf16 copies.
    const PagedRowsView copies = filled.cache->dense_entry_rows(0);
    const bool decode_copies = c.chunk == 1 && c.source == CompressedSource::kAll && copies.pool;
    std::vector<int32_t> dense_base;
    int64_t dense_row_count = 0;
    DeviceBuffer<uint16_t> dense_rows;
    DeviceBuffer<int32_t> d_dense_base;
    if (c.chunk > 1 || decode_copies) {
      const DeviceTokens& first = *group_tokens.front();
      dense_base.resize(first.host_position.size());
      dense_row_count = dense_rows_layout(first.host_position, first.host_begin, first.host_end,
                                          kWindow, decode_copies ? 0 : ratio, dense_base);
      dense_rows = DeviceBuffer<uint16_t>(size_t(dense_row_count) * kDim);
      d_dense_base = DeviceBuffer<int32_t>(dense_base);
    }
    for (Rows how : {Rows::kMain, Rows::kDense, Rows::kDenseEntryCopies}) {
      if (how == Rows::kDense && c.chunk == 1) continue;
      if (how == Rows::kDenseEntryCopies && !decode_copies) continue;
      a.dense = {};
      if (how == Rows::kDense) {
        a.dense = {dense_rows.data(), d_dense_base.data(), ratio, dense_row_count, {}, 0};
      } else if (how == Rows::kDenseEntryCopies) {
        a.dense = {dense_rows.data(),
                   d_dense_base.data(),
                   ratio,
                   dense_row_count,
                   copies,
                   filled.cache->dense_entry_pool_rows()};
      }
      std::vector<double> ms;
      for (int i = 0; i < kRuns + 3; ++i) {
        a.batch = group_tokens[size_t(i % groups)]->view;
        EventPair events;
        enqueue_gpu_delay(nullptr, 50.0);
        events.start(nullptr);
        sparse_attention(a, nullptr);
        events.stop(nullptr);
        if (i >= 3) ms.push_back(events.milliseconds());
      }
      report(c, how, batch, tokens, rows, median(ms) * 1e-3, visible, row_bytes, ceil);
    }
  }
}

}  // namespace
}  // namespace dsv4::cuda

int main(int argc, char** argv) {
  using namespace dsv4::cuda;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    if (device_count() == 0) {
      fmt::print(stderr, "dsv4_attention_bench: no CUDA device\n");
      return 1;
    }
    Ceilings ceil;
    ceil.hbm = measure_hbm_read_bandwidth();
    ceil.bf16 = measure_bf16_gemm_flops();
    const DeviceTraits& device = current_device_traits();
    fmt::print(
        "{}; kernel: {}; ceilings: HBM read {:.2f} TB/s, BF16 GEMM 8192^3 {:.0f} TFLOP/s\n\n",
        device_description(0), device.major == 9 ? "sm90 (wgmma)" : "portable", ceil.hbm / 1e12,
        ceil.bf16 / 1e12);
    fmt::print(
        "| model | case | batch | tokens | rows/token | time | TFLOP/s | TB/s | ÷ roofline |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|\n");
    std::mt19937_64 rng(20261130);
    const std::vector<int> decode_batches =
        quick ? std::vector<int>{32} : std::vector<int>{1, 32, 64, 128, 256};
    const std::vector<int> prefill_batches{1};
    for (const auto& [model, heads, topk] :
         {std::tuple<const char*, int, int>{"flash", 64, 512}, {"pro", 128, 1024}}) {
      run_case({model, "decode CSA", heads, topk, CompressedSource::kList, 4, 65535, 1},
               decode_batches, ceil, rng);
      run_case({model, "decode HCA 1K", heads, topk, CompressedSource::kAll, 128, 131071, 1},
               decode_batches, ceil, rng);
      if (!quick) {
        run_case({model, "decode HCA 8K", heads, topk, CompressedSource::kAll, 128, 1048575, 1},
                 decode_batches, ceil, rng);
      }
      run_case(
          {model, "prefill CSA 4096 @64K", heads, topk, CompressedSource::kList, 4, 61440, 4096},
          prefill_batches, ceil, rng);
      run_case(
          {model, "prefill HCA 4096 @64K", heads, topk, CompressedSource::kAll, 128, 61440, 4096},
          prefill_batches, ceil, rng);
      if (!quick) {
        // The last chunks of long prompts: HCA's rows grow with the position, CSA's lists spread.
        run_case(
            {model, "prefill CSA 4096 @1M", heads, topk, CompressedSource::kList, 4, 1044480, 4096},
            prefill_batches, ceil, rng);
        run_case({model, "prefill HCA 4096 @256K", heads, topk, CompressedSource::kAll, 128, 258048,
                  4096},
                 prefill_batches, ceil, rng);
        run_case({model, "prefill HCA 4096 @1M", heads, topk, CompressedSource::kAll, 128, 1044480,
                  4096},
                 prefill_batches, ceil, rng);
      }
      // A short prefill step (where the dense rows' extra pass weighs most).
      run_case({model, "prefill CSA 256 @64K", heads, topk, CompressedSource::kList, 4, 65280, 256},
               prefill_batches, ceil, rng);
      run_case(
          {model, "prefill HCA 256 @64K", heads, topk, CompressedSource::kAll, 128, 65280, 256},
          prefill_batches, ceil, rng);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "dsv4_attention_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
