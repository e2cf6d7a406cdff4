// Router kernel: one CTA per token, one thread per expert (the double-precision softplus of
// every expert runs in parallel). Top-k by rank: each expert counts the experts that beat it
// (higher biased score, ties to the lower id, a total order) and the first k ranks are the
// choices, in order. Reads the logits once (E·4 bytes per token).
#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/moe/router.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kMaxExperts = 512;  // threads per CTA
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

// Expert e's selection key: larger = chosen first. The float's bits ordered as an unsigned
// (negatives flipped, so NaN sorts too and nothing ties), then the lower id first.
__device__ __forceinline__ uint64_t selection_key(float value, int e) {
  const uint32_t bits = __float_as_uint(value + 0.0f);  // -0 → +0: the two tie
  const uint32_t ordered = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return (uint64_t(ordered) << 32) | uint32_t(0xffffffffu - uint32_t(e));
}

// The CTA's maximum of one value per thread; every thread gets it.
__device__ float block_reduce_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < warps; ++w) v = fmaxf(v, scratch[w]);
  return v;
}

// values[0] + values[1] + ... in that order, as cpu::route adds the softmax terms (a tree sum
// differs from it in the last bits); every thread gets it. Only softmax routing pays for it.
__device__ float sum_in_expert_order(const float* values, int count, float* scratch) {
  __syncthreads();  // values are written; scratch's readers (the maximum) are done
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int i = 0; i < count; ++i) sum = __fadd_rn(sum, values[i]);
    scratch[0] = sum;
  }
  __syncthreads();
  return scratch[0];
}

__global__ void __launch_bounds__(kMaxExperts)
    route_kernel(const float* logits, int experts, int k, ScoreFunc func, float route_scale,
                 const float* __restrict__ bias, const int32_t* __restrict__ tid2eid,
                 const int32_t* ids, int32_t* experts_out, float* weights_out) {
  wait_for_previous_kernel();
  __shared__ float scores[kMaxExperts];
  __shared__ uint64_t keys[kMaxExperts];
  __shared__ int32_t chosen[kMaxK];
  __shared__ float scratch[kMaxExperts / 32];
  const int e = int(threadIdx.x);
  const int64_t t = blockIdx.x;
  const bool live = e < experts;
  float s = live ? score_of(logits[t * experts + e], func) : 0.0f;
  if (func == ScoreFunc::kSoftmax) {
    const float max = block_reduce_max(live ? s : -INFINITY, scratch);
    s = live ? exp_rn(__fsub_rn(s, max)) : 0.0f;
    if (live) scores[e] = s;
    s = __fdiv_rn(s, sum_in_expert_order(scores, experts, scratch));
  }
  if (live) scores[e] = s;
  if (tid2eid) {
    if (e < k) chosen[e] = tid2eid[int64_t(ids[t]) * k + e];
  } else {
    const uint64_t key = selection_key(bias && live ? __fadd_rn(s, bias[e]) : s, e);
    if (live) keys[e] = key;
    __syncthreads();
    if (live) {
      int rank = 0;
      for (int other = 0; other < experts; ++other) rank += keys[other] > key;
      if (rank < k) chosen[rank] = e;
    }
  }
  __syncthreads();
  if (e == 0) {
    // As cpu::route: sum in choice order, then w / sum (not for softmax) · route_scale.
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum = __fadd_rn(sum, scores[chosen[j]]);
    for (int j = 0; j < k; ++j) {
      float v = scores[chosen[j]];
      if (func != ScoreFunc::kSoftmax) v = __fdiv_rn(v, sum);
      experts_out[t * k + j] = chosen[j];
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
  const auto threads = unsigned((shape.experts + 31) / 32 * 32);
  launch_dependent(route_kernel, unsigned(tokens), threads, 0, stream, logits, int(shape.experts),
                   int(shape.k), shape.score_func, shape.route_scale, bias, tid2eid, ids,
                   experts_out, weights_out);
}

}  // namespace dsv4::cuda
