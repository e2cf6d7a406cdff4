#include "cuda/kernels/gemm/scaled_gemm.h"

#include "core/error.h"
#include "cuda/kernels/gemm/fp4_expert_gemm.h"
#include "cuda/kernels/gemm/linear_wgmma.h"
#include "cuda/kernels/gemm/weight_stream.cuh"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {

using namespace gemm_detail;

void scaled_gemm(const uint8_t* x_codes, const float* x_scales, int64_t m,
                 const DeviceLinearView& w, LinearOutput y, cudaStream_t stream, SplitSums split,
                 bool tensor_cores) {
  if (!block_scaled(w.format)) {
    fail("scaled_gemm: the weight is {}, not FP8, FP4 or NVFP4", weight_format_name(w.format));
  }
  if (w.cols % 128 != 0) fail("scaled_gemm: {} inputs are not a multiple of 128", w.cols);
  if (w.fp4_order != Fp4Order::kNatural) {
    fail(
        "scaled_gemm: FP4 codes in the expert kernels' kMmaTiles layout (a dense weight needs the "
        "natural order)");
  }
  check_aligned(x_codes, "scaled_gemm: x_codes");
  StreamParams p = stream_params(w, y, m);
  p.x = x_codes;
  p.x_scales = x_scales;
  p.x_row_stride = w.cols;
  p.rows_per_group = w.rows;
  if (m == 0 || w.rows == 0) return;
  if (w.format == WeightFormat::kFp8 && tensor_cores && w.scale_storage == ScaleStorage::kF32 &&
      sm90_kernels_available()) {
    launch_linear_wgmma(p, w.format, split, stream);
  } else if (w.format == WeightFormat::kFp8) {
    launch_tuned<Fp8Weight, Fp8Activations>(p, stream);
  } else if (w.format == WeightFormat::kFp4) {
    launch_tuned<Fp4Weight, Fp8Activations>(p, stream);
  } else {
    launch_tuned<NvFp4Weight, Fp8Activations>(p, stream);
  }
}

int64_t scaled_gemm_split_floats() {
  return sm90_kernels_available() ? linear_wgmma_split_floats() : 0;
}

namespace {

// The checks and parameters every routed-expert launch shares.
StreamParams expert_params(const uint8_t* x_codes, const float* x_scales, const int32_t* offsets,
                           int64_t max_rows, const ExpertTiles& tiles,
                           const PackedLinearsView& experts, LinearOutput y) {
  const DeviceLinearView& w = experts.first;
  if (!block_scaled(w.format)) {
    fail("expert_scaled_gemm: the experts are {}, not FP8, FP4 or NVFP4",
         weight_format_name(w.format));
  }
  if (w.cols % 128 != 0) fail("expert_scaled_gemm: {} inputs are not a multiple of 128", w.cols);
  if (experts.count <= 0 || experts.count > 32767 || experts.value_bytes % 16 != 0) {
    fail("expert_scaled_gemm: {} experts of {} bytes", experts.count, experts.value_bytes);
  }
  if (max_rows > int64_t(65536) * 16 || !tiles.narrow || !tiles.wide || !tiles.counts) {
    fail("expert_scaled_gemm: {} rows per expert (at most 2^20) or no tile lists", max_rows);
  }
  check_aligned(x_codes, "expert_scaled_gemm: x_codes");
  StreamParams p = stream_params(w, y, max_rows);
  p.x = x_codes;
  p.x_scales = x_scales;
  p.x_row_stride = w.cols;
  p.rows_per_group = w.rows;
  p.expert_offsets = offsets;
  p.expert_w_bytes = experts.value_bytes;
  p.expert_scale_bytes = experts.scale_bytes;
  p.w_row_exponents = experts.row_exponents;
  const bool mma_order = w.fp4_order == Fp4Order::kMmaTiles;
  if (mma_order &&
      (w.format != WeightFormat::kFp4 || !sm90_kernels_available() || !experts.row_exponents)) {
    fail(
        "expert_scaled_gemm: {} experts in the sm_90 kernels' kMmaTiles layout without their row "
        "exponents or on a device without those kernels",
        weight_format_name(w.format));
  }
  return p;
}

// MXFP4 experts in the kMmaTiles layout at prefill sizes: the FP8 warpgroup-MMA kernel (rows a
// multiple of 8, the shapes its tests cover; its CTAs list the experts' tiles in shared memory).
bool runs_fp4_expert_wgmma(int64_t max_rows, const PackedLinearsView& experts) {
  return max_rows >= expert_wgmma_min_tokens(experts.count) && experts.first.rows % 8 == 0 &&
         experts.count <= kFp4ExpertWgmmaMaxExperts;
}

}  // namespace

bool expert_gemm_streams(int64_t max_rows, const PackedLinearsView& experts) {
  const DeviceLinearView& w = experts.first;
  return w.format == WeightFormat::kFp4 && w.fp4_order == Fp4Order::kMmaTiles &&
         sm90_kernels_available() && !runs_fp4_expert_wgmma(max_rows, experts);
}

void expert_scaled_gemm(const uint8_t* x_codes, const float* x_scales, const int32_t* offsets,
                        int64_t max_rows, const ExpertTiles& tiles,
                        const PackedLinearsView& experts, LinearOutput y, cudaStream_t stream) {
  const StreamParams p = expert_params(x_codes, x_scales, offsets, max_rows, tiles, experts, y);
  const DeviceLinearView& w = experts.first;
  if (max_rows == 0 || w.rows == 0) return;
  if (w.format == WeightFormat::kFp8) {
    launch_tuned_experts<Fp8Weight, Fp8Activations>(p, tiles, stream);
  } else if (w.fp4_order == Fp4Order::kMmaTiles) {
    if (runs_fp4_expert_wgmma(max_rows, experts)) {
      launch_fp4_expert_wgmma(p, experts.count, stream);
    } else {
      launch_fp4_expert_stream(p, tiles, stream);
    }
  } else if (w.format == WeightFormat::kFp4) {
    launch_tuned_experts<Fp4Weight, Fp8Activations>(p, tiles, stream);
  } else {
    launch_tuned_experts<NvFp4Weight, Fp8Activations>(p, tiles, stream);
  }
}

void expert_scaled_gemm_of_tokens(const uint8_t* x_codes, const float* x_scales,
                                  const int32_t* order, int64_t k, const int32_t* offsets,
                                  int64_t max_rows, const ExpertTiles& tiles,
                                  const PackedLinearsView& experts, LinearOutput y,
                                  cudaStream_t stream) {
  StreamParams p = expert_params(x_codes, x_scales, offsets, max_rows, tiles, experts, y);
  if (!expert_gemm_streams(max_rows, experts)) {
    fail(
        "expert_scaled_gemm_of_tokens: {} experts at {} tokens do not run on the decode-size "
        "sm_90 kernel",
        weight_format_name(experts.first.format), max_rows);
  }
  if (!order || k <= 0 || k > 1024) {
    fail("expert_scaled_gemm_of_tokens: no grouped order or {} experts per token", k);
  }
  p.x_order = order;
  p.x_order_k = int32_t(k);
  if (max_rows == 0 || experts.first.rows == 0) return;
  launch_fp4_expert_stream(p, tiles, stream);
}

}  // namespace dsv4::cuda
