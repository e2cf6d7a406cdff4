#include "model/weight_decoding.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/formats.h"
#include "core/thread_pool.h"

namespace dsv4 {
namespace {

constexpr int64_t kFp8WeightBlock = 128;   // rows and columns per FP8 weight scale
constexpr int64_t kFp4WeightBlock = 32;    // columns per FP4 weight scale
constexpr int64_t kNvFp4WeightBlock = 16;  // columns per NVFP4 weight scale
// Work per parallel task while decoding: big enough to amortise the hand-off.
constexpr int64_t kElementsPerTask = 1 << 16;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

std::vector<DType> allowed_dtypes(TensorRole role) {
  switch (role) {
    case TensorRole::kQuantizedLinear:
      return {DType::kF8E4M3, DType::kBF16, DType::kF32};
    case TensorRole::kExpertLinear:
      return {DType::kI8, DType::kU8, DType::kF8E4M3, DType::kBF16, DType::kF32};
    case TensorRole::kOutputLora:
      return {DType::kBF16, DType::kF32, DType::kF8E4M3};
    case TensorRole::kPlainLinear:
    case TensorRole::kNormWeight:
    case TensorRole::kFp32Param:
      return {DType::kBF16, DType::kF32};
    case TensorRole::kExpertTable:
      return {DType::kI64, DType::kI32};
  }
  return {};
}

std::string dtype_names(const std::vector<DType>& dtypes) {
  std::vector<std::string> names;
  for (const DType dtype : dtypes) names.emplace_back(dtype_name(dtype));
  return fmt::format("{}", fmt::join(names, ", "));
}

void expect_dtype(const TensorView& view, const std::vector<DType>& allowed, const char* what) {
  if (std::find(allowed.begin(), allowed.end(), view.dtype) == allowed.end()) {
    fail("{}: tensor '{}' has dtype {}; a {} must be one of {}", view.file().string(), view.name,
         dtype_name(view.dtype), what, dtype_names(allowed));
  }
}

void expect_shape(const TensorView& view, const std::vector<int64_t>& expected, const char* what) {
  if (view.shape != expected) {
    fail("{}: tensor '{}' has shape {}, expected {} ({} {})", view.file().string(), view.name,
         shape_string(view.shape), shape_string(expected), dtype_name(view.dtype), what);
  }
}

// Runs body(first_row, end_row) over [0, rows) on the global pool.
void for_row_ranges(int64_t rows, int64_t row_elements,
                    const std::function<void(int64_t, int64_t)>& body) {
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(row_elements, 1));
  ThreadPool::global().parallel_for(size_t(rows), size_t(grain), [&](size_t begin, size_t end) {
    body(int64_t(begin), int64_t(end));
  });
}

template <typename T>
T load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

void decode_scales(const TensorView& scale, std::vector<float>& out) {
  const int64_t n = scale.element_count();
  out.resize(size_t(n));
  const uint8_t* src = scale.bytes.data();
  if (scale.dtype == DType::kF8E8M0) {
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = ue8m0_to_float(src[i]);
  } else if (scale.dtype == DType::kF8E4M3) {
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = e4m3_to_float(src[i]);
  } else {
    std::memcpy(out.data(), src, size_t(n) * sizeof(float));
  }
}

}  // namespace

bool has_block_scales(DType dtype) {
  return dtype == DType::kF8E4M3 || dtype == DType::kI8 || dtype == DType::kU8;
}

WeightFormat check_stored_tensor(TensorRole role, const std::vector<int64_t>& shape,
                                 const TensorView& weight, const TensorView* scale,
                                 const TensorView* global_scale) {
  const char* what = tensor_role_name(role);
  expect_dtype(weight, allowed_dtypes(role), what);
  if (has_block_scales(weight.dtype) && !scale) {
    fail("{}: tensor '{}' is {} but has no block scale tensor", weight.file().string(), weight.name,
         dtype_name(weight.dtype));
  }
  if (!is_linear_role(role)) {
    expect_shape(weight, shape, what);
    return weight.dtype == DType::kBF16 ? WeightFormat::kBF16 : WeightFormat::kF32;
  }
  const int64_t rows = shape[0], cols = shape[1];
  const std::vector<DType> scale_dtypes = {DType::kF8E8M0, DType::kF32};
  switch (weight.dtype) {
    case DType::kF8E4M3:
      expect_shape(weight, shape, what);
      expect_dtype(*scale, scale_dtypes, "block scale");
      expect_shape(*scale, {ceil_div(rows, kFp8WeightBlock), ceil_div(cols, kFp8WeightBlock)},
                   "FP8 block scale");
      return WeightFormat::kFp8;
    case DType::kI8:
    case DType::kU8:
      if (scale->dtype == DType::kF8E4M3) {
        if (cols % kNvFp4WeightBlock != 0) {
          fail("{}: tensor '{}' is packed NVFP4 but its {} inputs are not a multiple of {}",
               weight.file().string(), weight.name, cols, kNvFp4WeightBlock);
        }
        expect_shape(weight, {rows, cols / 2}, "packed NVFP4");
        expect_shape(*scale, {rows, cols / kNvFp4WeightBlock}, "NVFP4 block scale");
        if (!global_scale) {
          fail("{}: tensor '{}' has e4m3 (NVFP4) block scales but no global scale tensor",
               weight.file().string(), weight.name);
        }
        expect_dtype(*global_scale, {DType::kF32}, "NVFP4 global scale");
        if (global_scale->element_count() != 1) {
          fail("{}: tensor '{}' has shape {}, expected one value (NVFP4 global scale)",
               global_scale->file().string(), global_scale->name,
               shape_string(global_scale->shape));
        }
        return WeightFormat::kNvFp4;
      }
      if (cols % kFp4WeightBlock != 0) {
        fail("{}: tensor '{}' is packed FP4 but its {} inputs are not a multiple of {}",
             weight.file().string(), weight.name, cols, kFp4WeightBlock);
      }
      expect_shape(weight, {rows, cols / 2}, "packed FP4");
      expect_dtype(*scale, scale_dtypes, "block scale");
      expect_shape(*scale, {rows, cols / kFp4WeightBlock}, "FP4 block scale");
      return WeightFormat::kFp4;
    case DType::kBF16:
      expect_shape(weight, shape, what);
      return WeightFormat::kBF16;
    default:
      expect_shape(weight, shape, what);
      return WeightFormat::kF32;
  }
}

void decode_linear(const TensorView& weight, const TensorView* scale,
                   const TensorView* global_scale, WeightFormat format, int64_t rows, int64_t cols,
                   LinearWeight& out) {
  out.rows = rows;
  out.cols = cols;
  out.format = format;
  out.values.resize(size_t(rows * cols));
  out.scales.clear();
  const uint8_t* src = weight.bytes.data();
  float* dst = out.values.data();
  for_row_ranges(rows, cols, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * cols, last = end * cols;
    switch (format) {
      case WeightFormat::kF32:
        std::memcpy(dst + first, src + first * 4, size_t(last - first) * sizeof(float));
        break;
      case WeightFormat::kBF16:
        for (int64_t i = first; i < last; ++i) dst[i] = bf16_to_float(load<uint16_t>(src + 2 * i));
        break;
      case WeightFormat::kFp8:
        for (int64_t i = first; i < last; ++i) dst[i] = e4m3_to_float(src[i]);
        break;
      case WeightFormat::kFp4:
      case WeightFormat::kNvFp4:
        for (int64_t i = first; i < last; i += 2) {
          const uint8_t byte = src[i / 2];
          dst[i] = e2m1_to_float(packed_e2m1_low(byte));
          dst[i + 1] = e2m1_to_float(packed_e2m1_high(byte));
        }
        break;
    }
  });
  if (scale) decode_scales(*scale, out.scales);
  out.global_scale = global_scale ? load<float>(global_scale->bytes.data()) : 1.0f;
}

void decode_floats(const TensorView& view, std::vector<float>& out) {
  const int64_t n = view.element_count();
  out.resize(size_t(n));
  const uint8_t* src = view.bytes.data();
  float* dst = out.data();
  for_row_ranges(n, 1, [&](int64_t begin, int64_t end) {
    if (view.dtype == DType::kF32) {
      std::memcpy(dst + begin, src + begin * 4, size_t(end - begin) * sizeof(float));
    } else {
      for (int64_t i = begin; i < end; ++i) dst[i] = bf16_to_float(load<uint16_t>(src + 2 * i));
    }
  });
}

void decode_expert_table(const TensorView& view, int64_t n_experts, std::vector<int32_t>& out) {
  const int64_t n = view.element_count();
  out.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = view.dtype == DType::kI64 ? load<int64_t>(view.bytes.data() + 8 * i)
                                                 : load<int32_t>(view.bytes.data() + 4 * i);
    if (id < 0 || id >= n_experts) {
      fail("{}: tensor '{}' entry {} is expert {}, outside [0, {})", view.file().string(),
           view.name, i, id, n_experts);
    }
    out[size_t(i)] = int32_t(id);
  }
}

}  // namespace dsv4
