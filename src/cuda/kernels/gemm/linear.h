// Linear layers on the GPU in official numerics, y = x · Wᵀ, mirroring cpu::linear and
// cpu::grouped_linear (src/cpu/linear.h). Weights stay in their checkpoint formats on the
// device (no dequantized copies):
//   kF32  float values [rows, cols]
//   kBF16 bf16 bits (uint16) [rows, cols]
//   kFp8  e4m3 codes [rows, cols] + float scales [ceil(rows/128), ceil(cols/128)]
//   kFp4  packed e2m1 [rows, cols/2] (low nibble = even column) + scales [rows, cols/32], ue8m0
//         bytes when every scale is a power of two (always, for official checkpoints), else
//         float
//   kNvFp4 packed e2m1 as kFp4 + e4m3 scale bytes [rows, cols/16] + float row scales [rows]:
//         the tensor's global scale for each output row (rows of stacked tensors keep theirs)
// Launchers take device pointers and a stream, never synchronise or allocate, and may be
// captured in a CUDA graph. Kernels: fp8_quantize.h, scaled_gemm.h, plain_gemm.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/runtime/device_buffer.h"
#include "model/weights.h"

namespace dsv4::cuda {

enum class ScaleStorage { kNone, kF32, kUe8m0, kE4m3 };

// How FP4 (and NVFP4) codes and their scales are laid out:
//   kNatural  as above (code k at byte k / 2, low nibble first; rows one after another);
//   kMmaTiles the sm_90 expert kernels' layout (order_experts_for_tensor_cores,
//             expert_weight_order.h; fp4_fragment_order.cuh): in each 16-byte run of 32 codes,
//             4-byte word q holds codes 4q .. 4q + 3 and 16 + 4q .. +3 (the run's 2-byte groups
//             in the order 0, 4, 1, 5, 2, 6, 3, 7) with the sign bits moved to where the e4m3
//             codes take them (their register fragments); and the rows' codes and scales are
//             stored by 64-row bands, each band 128-input stage by stage.
enum class Fp4Order { kNatural, kMmaTiles };

// A weight on the device, not owned: what the kernels read.
struct DeviceLinearView {
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  WeightFormat format = WeightFormat::kF32;
  const void* values = nullptr;  // 16-byte aligned, layout as above
  const void* scales = nullptr;  // kFp8 / kFp4 / kNvFp4 only
  ScaleStorage scale_storage = ScaleStorage::kNone;
  const float* row_scales = nullptr;  // kNvFp4 only: [rows], times each output
  Fp4Order fp4_order = Fp4Order::kNatural;
};

// A weight's device bytes, encoded on the host (exposed so that callers can pack many weights,
// e.g. experts, into one allocation).
struct EncodedLinear {
  std::vector<uint8_t> values;
  std::vector<uint8_t> scales;
  ScaleStorage scale_storage = ScaleStorage::kNone;
  std::vector<float> row_scales;  // kNvFp4 only
};
// Re-encodes the exact decoded values of `w` into its format's codes (src/core/formats.h).
// Fails if a value is not exactly representable in the format.
EncodedLinear encode_linear(const LinearWeight& w);

// An owning device weight.
struct DeviceLinear {
  int64_t rows = 0;
  int64_t cols = 0;
  WeightFormat format = WeightFormat::kF32;
  ScaleStorage scale_storage = ScaleStorage::kNone;
  DeviceBuffer<uint8_t> values;
  DeviceBuffer<uint8_t> scales;
  DeviceBuffer<float> row_scales;  // kNvFp4 only
  Fp4Order fp4_order = Fp4Order::kNatural;

  DeviceLinearView view() const {
    return {rows,
            cols,
            format,
            values.data(),
            scale_storage == ScaleStorage::kNone ? nullptr : scales.data(),
            scale_storage,
            row_scales.size() ? row_scales.data() : nullptr,
            fp4_order};
  }
  size_t bytes() const { return values.size() + scales.size() + row_scales.size() * sizeof(float); }
};

// Encodes and copies to the current device (synchronous: load time only).
DeviceLinear upload_linear(const LinearWeight& w);

// Weights of one shape and format packed back to back (the experts of a layer): weight i's
// values start i · value_bytes into `values`, its scales i · scale_bytes into `scales`, its
// row scales (NVFP4) i · rows into first.row_scales.
struct PackedLinearsView {
  DeviceLinearView first;  // weight 0
  int64_t count = 0;
  int64_t value_bytes = 0, scale_bytes = 0;
  const uint8_t* row_exponents = nullptr;  // see DevicePackedLinears
};

struct DevicePackedLinears {
  DeviceLinear storage;  // rows, cols, format, scale storage of one weight; all the bytes
  int64_t count = 0;
  int64_t value_bytes = 0, scale_bytes = 0;
  // Fp4Order::kMmaTiles only: per row of every weight (count · rows), the largest scale
  // exponent code of the row when the sm_90 prefill kernel's scale-folded encoding takes the row,
  // else 0 (order_experts_for_tensor_cores).
  DeviceBuffer<uint8_t> row_exponents;

  PackedLinearsView view() const {
    return {storage.view(), count, value_bytes, scale_bytes,
            row_exponents.size() ? row_exponents.data() : nullptr};
  }
  size_t bytes() const { return storage.bytes() + row_exponents.size(); }
};

// Encodes `weights` (same shape and format) and copies them to the device as one allocation.
DevicePackedLinears upload_packed(const std::vector<const LinearWeight*>& weights);
// The same from weights already encoded, each [rows, cols] of `format`.
DevicePackedLinears upload_packed(const std::vector<EncodedLinear>& weights, int64_t rows,
                                  int64_t cols, WeightFormat format);
// `bottom`'s rows under `top`'s (same columns and format; FP8: top.rows a multiple of 128), e.g.
// an expert's w1 over its w3. FP4 ue8m0 and float scales stack as float scales; NVFP4 rows
// keep their tensor's global scale.
EncodedLinear stack_encoded(const EncodedLinear& top, int64_t top_rows, const EncodedLinear& bottom,
                            int64_t cols, WeightFormat format);
// The same for two weights already on the device (same columns, format and scale storage;
// FP8: top.rows a multiple of 128), e.g. the shared expert's w1 over its w3 (load time only).
DeviceLinear stack_linears(const DeviceLinear& top, const DeviceLinear& bottom);

// Where a GEMM writes y [m, rows] (row-major, token-major); either or both may be set.
struct LinearOutput {
  float* f32 = nullptr;      // the fp32 result before rounding
  uint16_t* bf16 = nullptr;  // the same values rounded to bf16 (round to nearest even)
};

// Device scratch where a GEMM may keep the partial sums of a split over its inputs (fp32,
// `floats` of them); none: no split that needs it.
struct SplitSums {
  float* data = nullptr;
  int64_t floats = 0;
};

// Device scratch for the FP8-quantized activations of an FP8/FP4 linear.
struct Fp8ActivationBuffer {
  uint8_t* codes = nullptr;  // [m, cols] e4m3
  float* scales = nullptr;   // [m, cols/128]
};

// cpu::linear in official numerics: FP8, FP4 and NVFP4 weights quantize x per token per 128
// inputs into `scratch` and run the block-scaled GEMM; bf16 and f32 weights run the plain GEMM.
// x: [m, w.cols] fp32, 16-byte aligned.
void linear(const float* x, int64_t m, const DeviceLinearView& w, Fp8ActivationBuffer scratch,
            LinearOutput y, cudaStream_t stream);

}  // namespace dsv4::cuda
