// Router kernel: one warp per token, each lane holding the scores of experts lane, lane+32, ...
// in registers; top-k is k rounds of a warp arg-max (ties to the lower id). Reads the logits
// once (E·4 bytes per token) — negligible next to the gate GEMM, whose epilogue is the obvious
// place to fuse this kernel into next.
#include "core/error.h"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/moe/router.h"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = 16;  // experts per lane: at most 512 experts
constexpr int kMaxExperts = 32 * kPerLane;
constexpr int kMaxK = 16;

// glibc twins: evaluated in double and rounded once (see numerics.cuh).
__device__ __forceinline__ float softplus_rn(float x) {
  return x > 20.0f ? x : float(log1p(double(exp_rn(x))));
}

__device__ __forceinline__ float score_of(float logit, ScoreFunc func) {
  switch (func) {
    case ScoreFunc::kSqrtSoftplus:
      return __fsqrt_rn(softplus_rn(logit));
    case ScoreFunc::kSigmoid:
      return sigmoid_rn(logit);
    default:
      return logit;  // softmax: finished by the caller
  }
}

// a beats b: higher value, or equal value and lower id.
__device__ __forceinline__ bool beats(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

__global__ void __launch_bounds__(kWarps * 32)
    route_kernel(const float* __restrict__ logits, int64_t tokens, int experts, int k,
                 ScoreFunc func, float route_scale, const float* __restrict__ bias,
                 const int32_t* __restrict__ tid2eid, const int32_t* __restrict__ ids,
                 int32_t* __restrict__ experts_out, float* __restrict__ weights_out) {
  __shared__ float scores[kWarps][kMaxExperts];
  __shared__ int32_t chosen[kWarps][kMaxK];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t t = int64_t(blockIdx.x) * kWarps + warp;
  if (t >= tokens) return;
  const float* row = logits + t * experts;
  float s[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    s[j] = e < experts ? score_of(row[e], func) : 0.0f;
  }
  if (func == ScoreFunc::kSoftmax) {
    float max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (lane + 32 * j < experts) max = fmaxf(max, s[j]);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, offset));
    }
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (lane + 32 * j < experts) sum = __fadd_rn(sum, s[j] = exp_rn(__fsub_rn(s[j], max)));
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) s[j] = __fdiv_rn(s[j], sum);
  }
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    if (lane + 32 * j < experts) scores[warp][lane + 32 * j] = s[j];
  }
  if (tid2eid) {
    if (lane < k) chosen[warp][lane] = tid2eid[int64_t(ids[t]) * k + lane];
  } else {
    float biased[kPerLane];
    uint32_t live = 0;  // bit j: expert lane + 32j still unchosen
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      biased[j] = bias && e < experts ? __fadd_rn(s[j], bias[e]) : s[j];
      if (e < experts) live |= 1u << j;
    }
    for (int r = 0; r < k; ++r) {
      float best = -INFINITY;
      int best_id = 0x7fffffff;
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        if ((live >> j & 1u) && beats(biased[j], lane + 32 * j, best, best_id)) {
          best = biased[j];
          best_id = lane + 32 * j;
        }
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) {
        const float other = __shfl_xor_sync(0xffffffffu, best, offset);
        const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
        if (beats(other, other_id, best, best_id)) best = other, best_id = other_id;
      }
      if (best_id < experts && best_id % 32 == lane) live &= ~(1u << (best_id / 32));
      if (lane == 0) chosen[warp][r] = best_id;
    }
  }
  __syncwarp();
  if (lane == 0) {
    // As cpu::route: sum in choice order, then w / sum (not for softmax) · route_scale.
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum = __fadd_rn(sum, scores[warp][chosen[warp][j]]);
    for (int j = 0; j < k; ++j) {
      float v = scores[warp][chosen[warp][j]];
      if (func != ScoreFunc::kSoftmax) v = __fdiv_rn(v, sum);
      experts_out[t * k + j] = chosen[warp][j];
      weights_out[t * k + j] = __fmul_rn(v, route_scale);
    }
  }
}

}  // namespace

ScoreFunc parse_score_func(const std::string& name) {
  if (name == "sqrtsoftplus") return ScoreFunc::kSqrtSoftplus;
  if (name == "sigmoid") return ScoreFunc::kSigmoid;
  if (name == "softmax") return ScoreFunc::kSoftmax;
  fail("unknown score_func '{}'", name);
}

void moe_route(const float* logits, int64_t tokens, const RouterShape& shape, const float* bias,
               const int32_t* tid2eid, const int32_t* ids, int32_t* experts_out, float* weights_out,
               cudaStream_t stream) {
  if (shape.experts <= 0 || shape.experts > kMaxExperts || shape.k <= 0 || shape.k > kMaxK ||
      shape.k > shape.experts || tokens < 0) {
    fail("moe_route: unsupported shape tokens={} experts={} k={} (at most {} experts, k <= {})",
         tokens, shape.experts, shape.k, kMaxExperts, kMaxK);
  }
  if ((tid2eid == nullptr) != (ids == nullptr))
    fail("moe_route: hash routing needs tid2eid and ids");
  if (tokens == 0) return;
  const auto blocks = unsigned((tokens + kWarps - 1) / kWarps);
  route_kernel<<<blocks, kWarps * 32, 0, stream>>>(logits, tokens, int(shape.experts), int(shape.k),
                                                   shape.score_func, shape.route_scale, bias,
                                                   tid2eid, ids, experts_out, weights_out);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dsv4::cuda
