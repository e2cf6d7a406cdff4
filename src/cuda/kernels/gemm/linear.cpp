#include "cuda/kernels/gemm/linear.h"

#include <atomic>
#include <bit>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/formats.h"
#include "core/thread_pool.h"
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/plain_gemm.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr size_t kRowsPerTask = 64;

// Runs body(row) for every row on the global pool; returns the first row that failed, or -1.
template <typename Body>
int64_t for_each_row(int64_t rows, Body body) {
  std::atomic<int64_t> bad{-1};
  ThreadPool::global().parallel_for(size_t(rows), kRowsPerTask, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      if (!body(int64_t(r))) {
        int64_t expected = -1;
        bad.compare_exchange_strong(expected, int64_t(r));
      }
    }
  });
  return bad.load();
}

void check_row(int64_t bad_row, const LinearWeight& w, const char* what) {
  if (bad_row >= 0) {
    fail("encode_linear: row {} of a {}x{} {} weight holds a value that is not {}", bad_row, w.rows,
         w.cols, weight_format_name(w.format), what);
  }
}

// ue8m0 code of a power of two in [2^-126, 2^127], or -1 for anything else: 2^-127 (code 0,
// the one subnormal) is stored as a float scale, so that the kernels decode a ue8m0 byte with
// a shift (ue8m0_byte_to_float).
int ue8m0_code(float scale) {
  const uint32_t bits = std::bit_cast<uint32_t>(scale);
  const uint32_t exponent = bits >> 23;
  if ((bits & 0x7fffffu) != 0 || exponent == 0 || exponent >= 255) return -1;  // sign included
  return int(exponent);
}

// Packs FP4 / NVFP4 values as e2m1 pairs (low nibble = even column); fails on a value that is
// not an e2m1 code.
void pack_e2m1(const LinearWeight& w, std::vector<uint8_t>& packed) {
  if (w.cols % 32 != 0) {
    fail("encode_linear: a {} weight with {} inputs (a multiple of 32 is needed)",
         weight_format_name(w.format), w.cols);
  }
  const size_t cols = size_t(w.cols);
  const float* v = w.values.data();
  packed.resize(size_t(w.rows) * cols / 2);
  uint8_t* dst = packed.data();
  check_row(for_each_row(w.rows,
                         [&](int64_t r) {
                           bool ok = true;
                           for (size_t i = size_t(r) * cols; i < size_t(r + 1) * cols; i += 2) {
                             const uint8_t lo = float_to_e2m1(v[i]);
                             const uint8_t hi = float_to_e2m1(v[i + 1]);
                             dst[i / 2] = uint8_t(lo | (hi << 4));
                             ok &= e2m1_to_float(lo) == v[i] && e2m1_to_float(hi) == v[i + 1];
                           }
                           return ok;
                         }),
            w, "e2m1");
}

}  // namespace

EncodedLinear encode_linear(const LinearWeight& w) {
  const size_t count = size_t(w.rows * w.cols);
  if (w.values.size() != count) {
    fail("encode_linear: {} values for a {}x{} weight", w.values.size(), w.rows, w.cols);
  }
  const size_t expected_scales =
      block_scaled(w.format)
          ? size_t(((w.rows + w.scale_block_rows() - 1) / w.scale_block_rows()) * w.scale_cols())
          : 0;
  if (w.scales.size() != expected_scales) {
    fail("encode_linear: {} scales for a {}x{} {} weight, expected {}", w.scales.size(), w.rows,
         w.cols, weight_format_name(w.format), expected_scales);
  }
  EncodedLinear out;
  const float* v = w.values.data();
  const size_t cols = size_t(w.cols);
  switch (w.format) {
    case WeightFormat::kF32:
      out.values.resize(count * 4);
      std::memcpy(out.values.data(), v, count * 4);
      break;
    case WeightFormat::kBF16: {
      out.values.resize(count * 2);
      auto* dst = reinterpret_cast<uint16_t*>(out.values.data());
      check_row(for_each_row(w.rows,
                             [&](int64_t r) {
                               bool ok = true;
                               for (size_t i = size_t(r) * cols; i < size_t(r + 1) * cols; ++i) {
                                 dst[i] = float_to_bf16(v[i]);
                                 ok &= std::bit_cast<uint32_t>(bf16_to_float(dst[i])) ==
                                       std::bit_cast<uint32_t>(v[i]);
                               }
                               return ok;
                             }),
                w, "bf16");
      break;
    }
    case WeightFormat::kFp8: {
      out.values.resize(count);
      uint8_t* dst = out.values.data();
      check_row(for_each_row(w.rows,
                             [&](int64_t r) {
                               bool ok = true;
                               for (size_t i = size_t(r) * cols; i < size_t(r + 1) * cols; ++i) {
                                 dst[i] = float_to_e4m3(v[i]);
                                 ok &= e4m3_to_float(dst[i]) == v[i];
                               }
                               return ok;
                             }),
                w, "e4m3");
      out.scale_storage = ScaleStorage::kF32;
      out.scales.resize(w.scales.size() * 4);
      std::memcpy(out.scales.data(), w.scales.data(), out.scales.size());
      break;
    }
    case WeightFormat::kFp4: {
      pack_e2m1(w, out.values);
      bool powers_of_two = true;
      for (const float s : w.scales) powers_of_two &= ue8m0_code(s) >= 0;
      if (powers_of_two) {
        out.scale_storage = ScaleStorage::kUe8m0;
        out.scales.resize(w.scales.size());
        for (size_t i = 0; i < w.scales.size(); ++i)
          out.scales[i] = uint8_t(ue8m0_code(w.scales[i]));
      } else {
        out.scale_storage = ScaleStorage::kF32;
        out.scales.resize(w.scales.size() * 4);
        std::memcpy(out.scales.data(), w.scales.data(), out.scales.size());
      }
      break;
    }
    case WeightFormat::kNvFp4: {
      pack_e2m1(w, out.values);
      out.scale_storage = ScaleStorage::kE4m3;
      out.scales.resize(w.scales.size());
      for (size_t i = 0; i < w.scales.size(); ++i) {
        out.scales[i] = float_to_e4m3(w.scales[i]);
        if (e4m3_to_float(out.scales[i]) != w.scales[i]) {
          fail("encode_linear: block scale {} of a {}x{} NVFP4 weight ({}) is not an e4m3 value", i,
               w.rows, w.cols, w.scales[i]);
        }
      }
      out.row_scales.assign(size_t(w.rows), w.global_scale);
      break;
    }
  }
  return out;
}

DeviceLinear upload_linear(const LinearWeight& w) {
  EncodedLinear encoded = encode_linear(w);
  DeviceLinear d;
  d.rows = w.rows;
  d.cols = w.cols;
  d.format = w.format;
  d.scale_storage = encoded.scale_storage;
  d.values = DeviceBuffer<uint8_t>(encoded.values);
  if (!encoded.scales.empty()) d.scales = DeviceBuffer<uint8_t>(encoded.scales);
  if (!encoded.row_scales.empty()) d.row_scales = DeviceBuffer<float>(encoded.row_scales);
  return d;
}

DevicePackedLinears upload_packed(const std::vector<const LinearWeight*>& weights) {
  if (weights.empty()) fail("upload_packed: no weights");
  const LinearWeight& first = *weights.front();
  std::vector<EncodedLinear> encoded;
  for (const LinearWeight* w : weights) {
    if (w->rows != first.rows || w->cols != first.cols || w->format != first.format) {
      fail("upload_packed: a [{}, {}] {} weight among [{}, {}] {} weights", w->rows, w->cols,
           weight_format_name(w->format), first.rows, first.cols, weight_format_name(first.format));
    }
    encoded.push_back(encode_linear(*w));
  }
  return upload_packed(encoded, first.rows, first.cols, first.format);
}

DevicePackedLinears upload_packed(const std::vector<EncodedLinear>& weights, int64_t rows,
                                  int64_t cols, WeightFormat format) {
  if (weights.empty()) fail("upload_packed: no weights");
  const EncodedLinear& first = weights.front();
  DevicePackedLinears packed;
  packed.count = int64_t(weights.size());
  packed.value_bytes = int64_t(first.values.size());
  packed.scale_bytes = int64_t(first.scales.size());
  std::vector<uint8_t> values, scales;
  std::vector<float> row_scales;
  values.reserve(size_t(packed.value_bytes * packed.count));
  scales.reserve(size_t(packed.scale_bytes * packed.count));
  for (const EncodedLinear& w : weights) {
    if (int64_t(w.values.size()) != packed.value_bytes ||
        int64_t(w.scales.size()) != packed.scale_bytes ||
        w.row_scales.size() != first.row_scales.size()) {
      fail("upload_packed: encoded weights of different sizes");
    }
    if (w.scale_storage != first.scale_storage) {
      fail("upload_packed: the weights mix ue8m0 and fp32 scales");
    }
    values.insert(values.end(), w.values.begin(), w.values.end());
    scales.insert(scales.end(), w.scales.begin(), w.scales.end());
    row_scales.insert(row_scales.end(), w.row_scales.begin(), w.row_scales.end());
  }
  packed.storage.rows = rows;
  packed.storage.cols = cols;
  packed.storage.format = format;
  packed.storage.scale_storage = first.scale_storage;
  packed.storage.values = DeviceBuffer<uint8_t>(values);
  if (!scales.empty()) packed.storage.scales = DeviceBuffer<uint8_t>(scales);
  if (!row_scales.empty()) packed.storage.row_scales = DeviceBuffer<float>(row_scales);
  return packed;
}

EncodedLinear stack_encoded(const EncodedLinear& top, int64_t top_rows, const EncodedLinear& bottom,
                            int64_t cols, WeightFormat format) {
  if ((format == WeightFormat::kFp8 && top_rows % 128 != 0) ||
      top.row_scales.empty() != bottom.row_scales.empty()) {
    fail("stack_encoded: cannot stack these {} weights of {} inputs ({} rows on top)",
         weight_format_name(format), cols, top_rows);
  }
  EncodedLinear w = top;
  EncodedLinear under = bottom;
  // FP4 scales are ue8m0 bytes only where every scale of the weight is a power of two: a stack
  // of one such weight and one that is not keeps float scales throughout.
  if (w.scale_storage != under.scale_storage) {
    for (EncodedLinear* e : {&w, &under}) {
      if (e->scale_storage == ScaleStorage::kUe8m0) {
        std::vector<uint8_t> floats(e->scales.size() * sizeof(float));
        for (size_t i = 0; i < e->scales.size(); ++i) {
          const float value = ue8m0_to_float(e->scales[i]);
          std::memcpy(floats.data() + i * sizeof(float), &value, sizeof(float));
        }
        e->scales = std::move(floats);
        e->scale_storage = ScaleStorage::kF32;
      }
    }
    if (w.scale_storage != under.scale_storage) {
      fail("stack_encoded: the two {} weights store their block scales differently",
           weight_format_name(format));
    }
  }
  w.values.insert(w.values.end(), under.values.begin(), under.values.end());
  w.scales.insert(w.scales.end(), under.scales.begin(), under.scales.end());
  w.row_scales.insert(w.row_scales.end(), under.row_scales.begin(), under.row_scales.end());
  return w;
}

DeviceLinear stack_linears(const DeviceLinear& top, const DeviceLinear& bottom) {
  if (top.cols != bottom.cols || top.format != bottom.format ||
      top.scale_storage != bottom.scale_storage || top.fp4_order != bottom.fp4_order ||
      (top.format == WeightFormat::kFp8 && top.rows % 128 != 0)) {
    fail("stack_linears: cannot stack a [{}, {}] {} weight under a [{}, {}] {} one", bottom.rows,
         bottom.cols, weight_format_name(bottom.format), top.rows, top.cols,
         weight_format_name(top.format));
  }
  const auto concatenate = [](const auto& a, const auto& b) {
    using Buffer = std::decay_t<decltype(a)>;
    Buffer out(a.size() + b.size());
    const size_t unit = sizeof(*a.data());
    if (a.size()) {
      DSV4_CUDA_CHECK(cudaMemcpy(out.data(), a.data(), a.size() * unit, cudaMemcpyDeviceToDevice));
    }
    if (b.size()) {
      DSV4_CUDA_CHECK(
          cudaMemcpy(out.data() + a.size(), b.data(), b.size() * unit, cudaMemcpyDeviceToDevice));
    }
    return out;
  };
  DeviceLinear d;
  d.rows = top.rows + bottom.rows;
  d.cols = top.cols;
  d.format = top.format;
  d.scale_storage = top.scale_storage;
  d.fp4_order = top.fp4_order;
  d.values = concatenate(top.values, bottom.values);
  d.scales = concatenate(top.scales, bottom.scales);
  d.row_scales = concatenate(top.row_scales, bottom.row_scales);
  return d;
}

void linear(const float* x, int64_t m, const DeviceLinearView& w, Fp8ActivationBuffer scratch,
            LinearOutput y, cudaStream_t stream) {
  if (block_scaled(w.format)) {
    quantize_activations_fp8(x, m, w.cols, scratch.codes, scratch.scales, stream);
    scaled_gemm(scratch.codes, scratch.scales, m, w, y, stream);
  } else {
    plain_gemm(x, m, w, y, stream);
  }
}

}  // namespace dsv4::cuda
