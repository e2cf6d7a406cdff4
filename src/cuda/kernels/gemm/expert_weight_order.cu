#include "cuda/kernels/gemm/expert_weight_order.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/gemm/fp4_fragment_order.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {
namespace {

using gemm_detail::fp4_fragments::band_stage_offset;
using gemm_detail::fp4_fragments::kStageInputs;

// Eight codes (nibble i = code i, sign at bit 3) → magnitudes in place, code i's sign (i < 4) at
// bit 8i + 7 and code 4 + i's at bit 8i + 3 (fp4_fragment_order.cuh).
__device__ uint32_t move_signs(uint32_t codes) {
  uint32_t word = codes & 0x77777777u;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    word |= ((codes >> (4 * i + 3)) & 1u) << (8 * i + 7);
    word |= ((codes >> (16 + 4 * i + 3)) & 1u) << (8 * i + 3);
  }
  return word;
}

// Each 16-byte run: natural 2-byte groups g0 .. g7 → words (g0 g4), (g1 g5), (g2 g6), (g3 g7),
// signs moved.
__global__ void order_fp4_runs_kernel(uint4* runs, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const uint4 v = runs[i];
  runs[i] = make_uint4(
      move_signs(__byte_perm(v.x, v.z, 0x5410)), move_signs(__byte_perm(v.x, v.z, 0x7632)),
      move_signs(__byte_perm(v.y, v.w, 0x5410)), move_signs(__byte_perm(v.y, v.w, 0x7632)));
}

// Largest spread of block exponents within a row that the scale-folded encoding takes: s ≥ −5,
// where every e2m1 value times 2^s is an e4m3 normal (fp4_e4m3_conversion.cuh).
constexpr uint32_t kMaxFoldedSpread = 11;

// A row's largest scale exponent code (over all its inputs) and whether the scale-folded
// encoding can take the row.
template <bool kFloatScales>
__device__ uint32_t scan_row_scales(const uint8_t* row_scales, int64_t blocks, bool& foldable) {
  uint32_t high = 0, low = 0xffffffffu;
  bool powers_of_two = true;
  if constexpr (kFloatScales) {
    const auto* bits = reinterpret_cast<const uint32_t*>(row_scales);
    for (int64_t i = 0; i < blocks; ++i) {
      const uint32_t b = __ldg(bits + i), code = b >> 23;
      powers_of_two &= b == 0x00400000u || ((b & 0x807fffffu) == 0u && code != 0u);
      high = max(high, code);
      low = min(low, code);
    }
  } else {
    uint32_t high4 = 0u, low4 = 0xffffffffu;
    const auto fold = [&](uint32_t codes) {
      high4 = __vmaxu4(high4, codes);
      low4 = __vminu4(low4, codes);
    };
    if (blocks % 16 == 0 && reinterpret_cast<uintptr_t>(row_scales) % 16 == 0) {
      // 16 bytes a load, eight loads in flight: the scan's latency is one or two trips to
      // memory rather than one per word.
      const auto* chunks = reinterpret_cast<const uint4*>(row_scales);
#pragma unroll 8
      for (int64_t i = 0; i < blocks / 16; ++i) {
        const uint4 codes = __ldg(chunks + i);
        fold(codes.x), fold(codes.y), fold(codes.z), fold(codes.w);
      }
    } else {
      const auto* words = reinterpret_cast<const uint32_t*>(row_scales);
#pragma unroll 8
      for (int64_t i = 0; i < blocks / 4; ++i) fold(__ldg(words + i));
    }
    high = max(max(high4 & 0xffu, (high4 >> 8) & 0xffu), max((high4 >> 16) & 0xffu, high4 >> 24));
    low = min(min(low4 & 0xffu, (low4 >> 8) & 0xffu), min((low4 >> 16) & 0xffu, low4 >> 24));
  }
  // The sums are scaled by 2^(high − 127 − 6) at the end: a normal float.
  foldable = powers_of_two && high - low <= kMaxFoldedSpread && high >= 7u && high <= 254u;
  return high;
}

// One thread per row of every weight: its byte of DevicePackedLinears::row_exponents.
template <bool kFloatScales>
__global__ void row_exponents_kernel(const uint8_t* scales, int64_t weights, int64_t rows,
                                     int64_t scale_bytes, int64_t blocks, uint8_t* exponents) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= weights * rows) return;
  const int64_t weight = i / rows, row = i % rows;
  bool foldable = true;
  const uint32_t high = scan_row_scales<kFloatScales>(
      scales + weight * scale_bytes + row * blocks * (kFloatScales ? 4 : 1), blocks, foldable);
  exponents[i] = foldable ? uint8_t(high) : uint8_t(0);
}

// One thread per 4-byte word of `count` weights (natural order, `piece_words` words a row and
// stage) → its place in the band-stage order (fp4_fragment_order.cuh).
__global__ void band_stage_order_kernel(const uint32_t* natural, uint32_t* ordered, int64_t count,
                                        int64_t rows, int64_t stages, int64_t piece_words) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t weight_words = rows * stages * piece_words;
  if (i >= count * weight_words) return;
  const int64_t weight = i / weight_words, at = i % weight_words;
  const int64_t row = at / (stages * piece_words), stage = at / piece_words % stages;
  ordered[weight * weight_words + band_stage_offset(rows, stages, row, stage, piece_words) +
          at % piece_words] = natural[i];
}

// Puts each of `count` weights (`weight_bytes` apart, `piece` bytes a row and stage) in the
// band-stage order, through a scratch buffer of at most 64 MB (whole weights), on `stream`.
void order_by_band_stage(uint8_t* weights, int64_t count, int64_t weight_bytes, int64_t rows,
                         int64_t stages, int64_t piece, cudaStream_t stream) {
  if (count == 0 || weight_bytes == 0) return;
  if (weight_bytes != rows * stages * piece || piece % 4 != 0) {
    fail("order_experts_for_tensor_cores: {} bytes a weight, not [{} rows, {} stages] of {} bytes",
         weight_bytes, rows, stages, piece);
  }
  constexpr int64_t kScratchBytes = int64_t(64) << 20;
  const int64_t chunk = std::max<int64_t>(1, std::min(count, kScratchBytes / weight_bytes));
  DeviceBuffer<uint8_t> scratch(size_t(chunk * weight_bytes));
  constexpr int kThreads = 256;
  for (int64_t first = 0; first < count; first += chunk) {
    const int64_t n = std::min(chunk, count - first);
    uint8_t* at = weights + first * weight_bytes;
    const int64_t words = n * weight_bytes / 4;
    band_stage_order_kernel<<<unsigned((words + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        reinterpret_cast<const uint32_t*>(at), reinterpret_cast<uint32_t*>(scratch.data()), n, rows,
        stages, piece / 4);
    DSV4_CUDA_CHECK(cudaGetLastError());
    DSV4_CUDA_CHECK(cudaMemcpyAsync(at, scratch.data(), size_t(n * weight_bytes),
                                    cudaMemcpyDeviceToDevice, stream));
  }
  DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the scratch is freed
}

}  // namespace

void order_experts_for_tensor_cores(DevicePackedLinears& experts, cudaStream_t stream) {
  DeviceLinear& w = experts.storage;
  // The sm_90 kernels take whole 128-input stages (expert_scaled_gemm refuses other widths), and
  // the row-exponent scan reads each row's ue8m0 scales four at a time.
  if (w.format != WeightFormat::kFp4 || w.fp4_order != Fp4Order::kNatural ||
      !sm90_kernels_available() || w.cols % kStageInputs != 0) {
    return;
  }
  if (w.values.size() % 16 != 0) {
    fail("order_experts_for_tensor_cores: {} bytes of [{}, {}] codes are not whole 16-byte runs",
         w.values.size(), w.rows, w.cols);
  }
  if (w.scale_storage != ScaleStorage::kUe8m0 && w.scale_storage != ScaleStorage::kF32) {
    fail("order_experts_for_tensor_cores: FP4 scales that are neither ue8m0 bytes nor floats");
  }
  constexpr int kThreads = 256;
  const auto runs = int64_t(w.values.size() / 16);
  if (runs > 0) {
    order_fp4_runs_kernel<<<unsigned((runs + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        reinterpret_cast<uint4*>(w.values.data()), runs);
    DSV4_CUDA_CHECK(cudaGetLastError());
  }
  const int64_t all_rows = experts.count * w.rows;
  experts.row_exponents = DeviceBuffer<uint8_t>(size_t(all_rows));
  if (all_rows > 0) {
    const auto kernel = w.scale_storage == ScaleStorage::kF32 ? row_exponents_kernel<true>
                                                              : row_exponents_kernel<false>;
    kernel<<<unsigned((all_rows + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        w.scales.data(), experts.count, w.rows, experts.scale_bytes, w.cols / 32,
        experts.row_exponents.data());
    DSV4_CUDA_CHECK(cudaGetLastError());
  }
  // The scans above read the scales in the natural order.
  const int64_t stages = w.cols / kStageInputs;
  order_by_band_stage(w.values.data(), experts.count, experts.value_bytes, w.rows, stages,
                      kStageInputs / 2, stream);
  order_by_band_stage(w.scales.data(), experts.count, experts.scale_bytes, w.rows, stages,
                      kStageInputs / 32 * (w.scale_storage == ScaleStorage::kF32 ? 4 : 1), stream);
  w.fp4_order = Fp4Order::kMmaTiles;
}

}  // namespace dsv4::cuda
