#include "cuda/model/glue.h"

#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void bf16_to_f32_kernel(const uint16_t* x, int64_t n, float* out) {
  wait_for_previous_kernel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = bf16_bits_to_float(x[i]);
  }
}

__global__ void scale_bf16_kernel(uint16_t* x, int64_t n, float scale) {
  wait_for_previous_kernel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = float_to_bf16_bits(__fmul_rn(bf16_bits_to_float(x[i]), scale));
  }
}

// One warp per row, lane l holding values kPerLane·l .. kPerLane·l + kPerLane − 1: the
// butterflies of half < kPerLane within a lane, wider ones between lanes l and l ^ (half /
// kPerLane) (each element still gets a + b or a − b, as the CPU's loop); a 32-value FP4 block
// spans 32 / kPerLane lanes, whose maximum a few shuffles give.
template <int kPerLane>
__global__ void __launch_bounds__(kThreads)
    indexer_query_rotate_kernel(uint16_t* x, int64_t rows, float scale) {
  wait_for_previous_kernel();
  constexpr int kDim = 32 * kPerLane;
  const int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = int(threadIdx.x % 32);
  uint16_t* src = x + row * kDim + kPerLane * lane;
  float v[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) v[i] = bf16_bits_to_float(src[i]);
#pragma unroll
  for (int half = 1; half < kPerLane; half *= 2) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if ((i & half) == 0) {
        const float a = v[i], b = v[i + half];
        v[i] = __fadd_rn(a, b);
        v[i + half] = __fsub_rn(a, b);
      }
    }
  }
#pragma unroll
  for (int lanes = 1; lanes < 32; lanes *= 2) {
    const bool upper = (lane & lanes) != 0;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const float other = __shfl_xor_sync(0xffffffffu, v[i], lanes);
      v[i] = upper ? __fsub_rn(other, v[i]) : __fadd_rn(v[i], other);
    }
  }
  constexpr int kBlockLanes = kPerLane >= 32 ? 1 : 32 / kPerLane;
  constexpr int kBlocksPerLane = kPerLane >= 32 ? kPerLane / 32 : 1;
#pragma unroll
  for (int b = 0; b < kBlocksPerLane; ++b) {
    constexpr int kInBlock = kPerLane / kBlocksPerLane;
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kInBlock; ++i) {
      v[b * kInBlock + i] = round_bf16(__fmul_rn(v[b * kInBlock + i], scale));
      amax = fmaxf(amax, fabsf(v[b * kInBlock + i]));
    }
#pragma unroll
    for (int lanes = 1; lanes < kBlockLanes; lanes *= 2) {
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, lanes));
    }
    const float s = fp4_block_scale(amax);
#pragma unroll
    for (int i = 0; i < kInBlock; ++i) {
      const float value = v[b * kInBlock + i];
      src[b * kInBlock + i] =
          float_to_bf16_bits(__fmul_rn(e2m1_to_float(quantize_e2m1(value, s)), s));
    }
  }
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return int(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

void bf16_to_f32(const uint16_t* x, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_dependent(bf16_to_f32_kernel, grid_for(n), kThreads, 0, stream, x, n, out);
}

void scale_bf16(uint16_t* x, int64_t n, float scale, cudaStream_t stream) {
  if (n <= 0) return;
  launch_dependent(scale_bf16_kernel, grid_for(n), kThreads, 0, stream, x, n, scale);
}

void indexer_query_rotate(uint16_t* x, int64_t rows, int64_t dim, cudaStream_t stream) {
  if (dim < 32 || dim > 1024 || (dim & (dim - 1)) != 0) {
    fail("indexer_query_rotate: dim {} is not a power of two in [32, 1024]", dim);
  }
  if (rows <= 0) return;
  const auto scale = float(1.0 / std::sqrt(double(dim)));
  const auto blocks = unsigned((rows + kThreads / 32 - 1) / (kThreads / 32));
  const auto launch = [&](auto per_lane) {
    launch_dependent(indexer_query_rotate_kernel<decltype(per_lane)::value>, blocks, kThreads, 0,
                     stream, x, rows, scale);
  };
  switch (dim / 32) {
    case 1:
      launch(std::integral_constant<int, 1>{});
      break;
    case 2:
      launch(std::integral_constant<int, 2>{});
      break;
    case 4:
      launch(std::integral_constant<int, 4>{});
      break;
    case 8:
      launch(std::integral_constant<int, 8>{});
      break;
    case 16:
      launch(std::integral_constant<int, 16>{});
      break;
    default:
      launch(std::integral_constant<int, 32>{});
      break;
  }
}

}  // namespace dsv4::cuda
