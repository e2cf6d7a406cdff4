#include "cuda/kernels/gemm/plain_gemm.h"

#include "core/error.h"
#include "cuda/kernels/gemm/linear_wgmma.h"
#include "cuda/kernels/gemm/weight_stream.cuh"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {
namespace {

using namespace gemm_detail;

// A warp's R rows share each activation load, so in a grouped product they must lie in one
// input group (launch_weight_stream falls back to one row per warp where they would not).
template <class W>
void launch(const StreamParams& p, cudaStream_t stream) {
  if (p.rows_per_group == p.rows) {
    launch_tuned<W, F32Activations>(p, stream);
  } else {
    launch_tuned<W, F32Activations, true>(p, stream);
  }
}

void run(const float* x, int64_t m, int64_t groups, const DeviceLinearView& w, LinearOutput y,
         cudaStream_t stream, const char* what) {
  if (groups < 1 || w.rows % groups != 0) {
    fail("{}: {} rows do not split into {} groups", what, w.rows, groups);
  }
  check_aligned(x, what);
  StreamParams p = stream_params(w, y, m);
  p.x = x;
  p.x_row_stride = groups * w.cols;
  p.rows_per_group = w.rows / groups;
  if (m == 0 || w.rows == 0) return;
  switch (w.format) {
    case WeightFormat::kF32:
      launch<F32Weight>(p, stream);
      break;
    case WeightFormat::kBF16:
      launch<Bf16Weight>(p, stream);
      break;
    case WeightFormat::kFp8:
      launch<Fp8Weight>(p, stream);
      break;
    case WeightFormat::kFp4:
      launch<Fp4Weight>(p, stream);
      break;
    case WeightFormat::kNvFp4:
      launch<NvFp4Weight>(p, stream);
      break;
  }
}

}  // namespace

void plain_gemm(const float* x, int64_t m, const DeviceLinearView& w, LinearOutput y,
                cudaStream_t stream) {
  run(x, m, 1, w, y, stream, "plain_gemm");
}

void grouped_gemm(const float* x, int64_t m, int64_t groups, const DeviceLinearView& w,
                  LinearOutput y, cudaStream_t stream) {
  run(x, m, groups, w, y, stream, "grouped_gemm");
}

bool bf16_gemm_available(const DeviceLinearView& w, int64_t groups) {
  return w.format == WeightFormat::kBF16 && w.cols % 128 == 0 && groups >= 1 &&
         w.rows % groups == 0 && (groups == 1 || (w.rows / groups) % 128 == 0) &&
         sm90_kernels_available();
}

void bf16_gemm(const uint16_t* x, int64_t m, int64_t groups, const DeviceLinearView& w,
               LinearOutput y, cudaStream_t stream, SplitSums split) {
  if (!bf16_gemm_available(w, groups)) {
    fail("bf16_gemm: a {}x{} {} weight in {} groups has no tensor-core kernel here", w.rows, w.cols,
         weight_format_name(w.format), groups);
  }
  check_aligned(x, "bf16_gemm");
  StreamParams p = stream_params(w, y, m);
  p.x = x;
  p.x_row_stride = groups * w.cols;
  p.rows_per_group = w.rows / groups;
  if (m == 0 || w.rows == 0) return;
  launch_linear_wgmma(p, w.format, split, stream);
}

}  // namespace dsv4::cuda
