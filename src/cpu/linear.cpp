#include "cpu/linear.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/formats.h"
#include "core/quantize.h"
#include "core/thread_pool.h"

namespace dsv4::cpu {
namespace {

constexpr int64_t kRowsPerTask = 8;

// Activations after the reference's FP8 quantizer: e4m3 values (as floats) and one scale per
// 128 inputs.
struct QuantizedActivations {
  std::vector<float> values;
  std::vector<float> scales;
};

QuantizedActivations quantize_activations(const float* x, int64_t m, int64_t k) {
  if (k % int64_t(kFp8ActivationBlock) != 0) {
    fail("FP8 activation quantization needs a multiple of 128 inputs, got {}", k);
  }
  const int64_t blocks = k / int64_t(kFp8ActivationBlock);
  QuantizedActivations q{std::vector<float>(size_t(m * k)), std::vector<float>(size_t(m * blocks))};
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  for (int64_t row = 0; row < m; ++row) {
    quantize_fp8(x + row * k, size_t(k), kFp8ActivationBlock, codes.data(),
                 q.scales.data() + row * blocks);
    for (int64_t i = 0; i < k; ++i) q.values[size_t(row * k + i)] = e4m3_to_float(codes[size_t(i)]);
  }
  return q;
}

// One output element: Σ over weight-scale blocks of (partial · s_w [· s_x]), times the
// weight's global scale (NVFP4; 1 otherwise, exact).
float scaled_row_dot(const float* x, const float* x_scales, int64_t x_block, const LinearWeight& w,
                     int64_t row) {
  const float* wrow = w.values.data() + row * w.cols;
  const int64_t block = w.scale_block_cols();
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < w.cols; k0 += block) {
    const int64_t len = std::min(block, w.cols - k0);
    float partial = dot(x + k0, wrow + k0, len);
    if (x_scales) partial *= x_scales[k0 / x_block];
    acc += partial * w.scale_at(row, k0);
  }
  return acc * w.global_scale;
}

}  // namespace

namespace {
std::atomic<SummationOrder> summation_order{SummationOrder::kForward};
}  // namespace

void set_summation_order(SummationOrder order) {
  summation_order.store(order, std::memory_order_relaxed);
}

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  if (summation_order.load(std::memory_order_relaxed) == SummationOrder::kReverse) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = n - 1; i >= 0; --i) sum += a[i] * b[i];
    return sum;
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void linear(const float* x, int64_t m, const LinearWeight& w, Numerics numerics, float* y) {
  const bool quantized = block_scaled(w.format);
  QuantizedActivations q;
  const float* input = x;
  const float* input_scales = nullptr;
  if (quantized && numerics == Numerics::kOfficial) {
    q = quantize_activations(x, m, w.cols);
    input = q.values.data();
    input_scales = q.scales.data();
  }
  const int64_t x_blocks = w.cols / int64_t(kFp8ActivationBlock);
  ThreadPool::global().parallel_for(
      size_t((w.rows + kRowsPerTask - 1) / kRowsPerTask), 1, [&](size_t begin, size_t end) {
        const int64_t r0 = int64_t(begin) * kRowsPerTask;
        const int64_t r1 = std::min(w.rows, int64_t(end) * kRowsPerTask);
        for (int64_t token = 0; token < m; ++token) {
          const float* xt = input + token * w.cols;
          const float* st = input_scales ? input_scales + token * x_blocks : nullptr;
          for (int64_t row = r0; row < r1; ++row) {
            y[token * w.rows + row] =
                quantized ? scaled_row_dot(xt, st, int64_t(kFp8ActivationBlock), w, row)
                          : dot(xt, w.values.data() + row * w.cols, w.cols);
          }
        }
      });
}

void grouped_linear(const float* x, int64_t m, int64_t groups, const LinearWeight& w, float* y) {
  const int64_t rows_per_group = w.rows / groups;
  ThreadPool::global().parallel_for(
      size_t((w.rows + kRowsPerTask - 1) / kRowsPerTask), 1, [&](size_t begin, size_t end) {
        const int64_t r0 = int64_t(begin) * kRowsPerTask;
        const int64_t r1 = std::min(w.rows, int64_t(end) * kRowsPerTask);
        for (int64_t token = 0; token < m; ++token) {
          for (int64_t row = r0; row < r1; ++row) {
            const float* xg = x + token * groups * w.cols + (row / rows_per_group) * w.cols;
            y[token * w.rows + row] = scaled_row_dot(xg, nullptr, 1, w, row);
          }
        }
      });
}

}  // namespace dsv4::cpu
