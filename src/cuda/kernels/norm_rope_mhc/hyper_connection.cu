// mHC kernels.
//  1. hc_partial_kernel: mixes_j = fn_j · x̂ and Σ x̂² per token, split over the 4·dim inputs:
//     block (slice, token tile) holds a 512-input slice of all mix rows of fn in registers and
//     reuses it for kTokenTile tokens; partial sums go to the workspace [tokens, slices, mix+1].
//  2. hc_finish_kernel: one block per token adds the partials in a fixed order (deterministic);
//     warp 0 forms the mixes and the pre sigmoids, then the block computes the weighted stream
//     sum, rounded once: the sublayer's input.
//  3. hc_weights_kernel: one warp per token adds the same partials and forms the post sigmoids
//     and the 20-iteration Sinkhorn on the 4x4 matrix (16 lanes): a dependent chain ~40
//     divisions deep that only hc_expand needs, so it may run beside the sublayer.
//  4. hc_expand_kernel: post·o + Σ_j comb[j][k]·X_j per element, in place.
// Every operation after the dot products mirrors the CPU's operation order with explicit
// round-to-nearest intrinsics (no FMA contraction), so given the same mixes the outputs are
// bit-identical; the mixes themselves differ from the CPU in the last bits (summation order).
// Next optimisation: for prefill, the [tokens, 4·dim] x [4·dim, 24] product belongs on tensor
// cores (it is a skinny GEMM), and the collapse/expand pair of consecutive sites can be fused
// (expand of site n and the partial sums of site n+1 read the same streams).
#include <algorithm>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/norm_rope_mhc/hyper_connection.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kHc = 4;
constexpr int kSiteMix = (2 + kHc) * kHc;  // 24
constexpr int kPartialThreads = 128;
constexpr int kSliceK = kPartialThreads * 4;  // inputs per block
constexpr int kTokenTile = 8;
constexpr int kFinishThreads = 256;
constexpr int kExpandThreads = 256;

int64_t slice_count(int64_t width) {
  return (width + kSliceK - 1) / kSliceK;
}

template <int MIX>
__global__ void __launch_bounds__(kPartialThreads)
    hc_partial_kernel(const uint16_t* streams, const float* __restrict__ fn, int64_t tokens,
                      int64_t width, int slices, float* partials) {
  wait_for_previous_kernel();
  const int slice = blockIdx.x;
  const int64_t t0 = int64_t(blockIdx.y) * kTokenTile;
  const int64_t k = int64_t(slice) * kSliceK + int64_t(threadIdx.x) * 4;  // width % 4 == 0
  const bool active = k < width;
  float w[MIX][4];
#pragma unroll
  for (int j = 0; j < MIX; ++j) {
    float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (active) f = *reinterpret_cast<const float4*>(fn + int64_t(j) * width + k);
    w[j][0] = f.x, w[j][1] = f.y, w[j][2] = f.z, w[j][3] = f.w;
  }
  __shared__ float reduced[2][kPartialThreads / 32][MIX + 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int tt = 0; tt < kTokenTile; ++tt) {
    const int64_t t = t0 + tt;
    if (t >= tokens) break;  // uniform over the block
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (active) load_bf16<4>(streams + t * width + k, x);
    float acc[MIX + 1];
#pragma unroll
    for (int j = 0; j < MIX; ++j) {
      acc[j] = fmaf(w[j][3], x[3], fmaf(w[j][2], x[2], fmaf(w[j][1], x[1], w[j][0] * x[0])));
    }
    acc[MIX] = fmaf(x[3], x[3], fmaf(x[2], x[2], fmaf(x[1], x[1], x[0] * x[0])));
#pragma unroll
    for (int j = 0; j <= MIX; ++j) {
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) {
        acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], offset);
      }
    }
    if (lane == 0) {
#pragma unroll
      for (int j = 0; j <= MIX; ++j) reduced[tt & 1][warp][j] = acc[j];
    }
    __syncthreads();  // double buffer: the next token writes the other half
    if (threadIdx.x <= MIX) {
      float sum = 0.0f;
#pragma unroll
      for (int v = 0; v < kPartialThreads / 32; ++v) sum += reduced[tt & 1][v][threadIdx.x];
      partials[(t * slices + slice) * (MIX + 1) + threadIdx.x] = sum;
    }
  }
}

// The CPU's Sinkhorn (cpu::sinkhorn) on the 4x4 matrix, spread over the lanes of a warp: lane
// l < 16 holds C[l / 4][l % 4] (every lane must call; lanes 16..31 compute values nobody
// uses). Each row / column sum gathers its four values with shuffles and adds them in the
// CPU's order, so the result is the CPU's bit for bit; the 39 dependent normalisations (~40
// divisions deep) are why it runs in a kernel of its own, beside the sublayer.
__device__ float sinkhorn_lanes(float c, int iters, float eps) {
  const int lane = threadIdx.x & 31, row = (lane >> 2) & 3, col = lane & 3;
  float v[kHc];
#pragma unroll
  for (int q = 0; q < kHc; ++q) v[q] = __shfl_sync(0xffffffffu, c, row * kHc + q);
  float max = v[0];
#pragma unroll
  for (int q = 1; q < kHc; ++q) max = fmaxf(max, v[q]);
  float sum = 0.0f, mine = 0.0f;
#pragma unroll
  for (int q = 0; q < kHc; ++q) {
    const float e = exp_rn(__fsub_rn(v[q], max));
    sum = __fadd_rn(sum, e);
    if (q == col) mine = e;
  }
  c = __fadd_rn(__fdiv_rn(mine, sum), eps);
  for (int it = 0; it < iters; ++it) {
    if (it > 0) {  // rows (the first pass normalises columns only)
#pragma unroll
      for (int q = 0; q < kHc; ++q) v[q] = __shfl_sync(0xffffffffu, c, row * kHc + q);
      sum = 0.0f;
#pragma unroll
      for (int q = 0; q < kHc; ++q) sum = __fadd_rn(sum, v[q]);
      c = __fdiv_rn(c, __fadd_rn(sum, eps));
    }
#pragma unroll
    for (int q = 0; q < kHc; ++q) v[q] = __shfl_sync(0xffffffffu, c, q * kHc + col);
    sum = 0.0f;
#pragma unroll
    for (int q = 0; q < kHc; ++q) sum = __fadd_rn(sum, v[q]);
    c = __fdiv_rn(c, __fadd_rn(sum, eps));
  }
  return c;
}

// Warp-wide: lane j < kMix gets mix j of token t, (fn_j · x̂) · inv with inv = 1 / sqrt(Σx̂² /
// width + eps), from the partial sums added in slice order (lane kMix adds Σx̂²).
template <int kMix>
__device__ __forceinline__ float token_mix(const float* partials, int64_t t, int slices,
                                           int64_t width, float norm_eps) {
  const int lane = threadIdx.x & 31;
  float sum = 0.0f;
  if (lane <= kMix) {
    const float* p = partials + t * slices * (kMix + 1) + lane;
    for (int s = 0; s < slices; ++s) sum = __fadd_rn(sum, p[s * (kMix + 1)]);
  }
  const float squares = __shfl_sync(0xffffffffu, sum, kMix);
  const float inv =
      __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(squares, float(width)), norm_eps)));
  return lane < kMix ? __fmul_rn(sum, inv) : 0.0f;
}

// One block per token: the pre weights (warp 0), then the weighted stream sum, rounded once.
// N values per access: 8 when dim % 8 == 0 (16-byte vectors), else 1.
template <int kMix, int N>
__global__ void __launch_bounds__(kFinishThreads)
    hc_finish_kernel(const uint16_t* streams, const float* partials, int slices, int64_t dim,
                     const float* __restrict__ base, const float* __restrict__ scale,
                     float norm_eps, float hc_eps, uint16_t* collapsed) {
  wait_for_previous_kernel();
  const int64_t t = blockIdx.x, width = kHc * dim;
  __shared__ float pre[kHc];
  if (threadIdx.x < 32) {
    const float m = token_mix<kMix>(partials, t, slices, width, norm_eps);
    const int lane = threadIdx.x;
    if (lane < kHc) {
      pre[lane] = __fadd_rn(sigmoid_rn(__fadd_rn(__fmul_rn(m, scale[0]), base[lane])), hc_eps);
    }
  }
  __syncthreads();
  float p[kHc];
#pragma unroll
  for (int j = 0; j < kHc; ++j) p[j] = pre[j];
  const uint16_t* x = streams + t * width;
  for (int64_t i = int64_t(threadIdx.x) * N; i < dim; i += int64_t(kFinishThreads) * N) {
    float sum[N];
#pragma unroll
    for (int e = 0; e < N; ++e) sum[e] = 0.0f;
#pragma unroll
    for (int j = 0; j < kHc; ++j) {
      float v[N];
      load_bf16<N>(x + j * dim + i, v);
#pragma unroll
      for (int e = 0; e < N; ++e) sum[e] = __fadd_rn(sum[e], __fmul_rn(p[j], v[e]));
    }
    store_bf16<N>(collapsed + t * dim + i, sum);
  }
}

// One warp per token of a block site: the post weights and the Sinkhorn-normalised comb.
__global__ void __launch_bounds__(32)
    hc_weights_kernel(const float* partials, int slices, int64_t width,
                      const float* __restrict__ base, const float* __restrict__ scale,
                      float norm_eps, float hc_eps, int iters, float* post, float* comb) {
  wait_for_previous_kernel();
  const int64_t t = blockIdx.x;
  const int lane = threadIdx.x;
  const float m = token_mix<kSiteMix>(partials, t, slices, width, norm_eps);
  if (lane >= kHc && lane < 2 * kHc) {
    post[t * kHc + lane - kHc] =
        __fmul_rn(2.0f, sigmoid_rn(__fadd_rn(__fmul_rn(m, scale[1]), base[lane])));
  }
  const float logit =
      lane >= 2 * kHc && lane < kSiteMix ? __fadd_rn(__fmul_rn(m, scale[2]), base[lane]) : 0.0f;
  // Lane l < 16 takes comb logit l (held by lane 8 + l).
  const float c =
      sinkhorn_lanes(__shfl_sync(0xffffffffu, logit, (lane + 2 * kHc) & 31), iters, hc_eps);
  if (lane < kHc * kHc) comb[t * kHc * kHc + lane] = c;
}

template <int N>
__global__ void __launch_bounds__(kExpandThreads)
    hc_expand_kernel(uint16_t* streams, const uint16_t* output, const float* post,
                     const float* comb, int64_t dim) {
  wait_for_previous_kernel();
  const int64_t t = blockIdx.x;
  float p[kHc], c[kHc * kHc];
#pragma unroll
  for (int k = 0; k < kHc; ++k) p[k] = post[t * kHc + k];
#pragma unroll
  for (int j = 0; j < kHc * kHc; ++j) c[j] = comb[t * kHc * kHc + j];
  uint16_t* x = streams + t * kHc * dim;
  const uint16_t* o = output + t * dim;
  for (int64_t i = (int64_t(blockIdx.y) * kExpandThreads + threadIdx.x) * N; i < dim;
       i += int64_t(gridDim.y) * kExpandThreads * N) {
    float in[kHc][N], out_o[N];
#pragma unroll
    for (int j = 0; j < kHc; ++j) load_bf16<N>(x + j * dim + i, in[j]);
    load_bf16<N>(o + i, out_o);
#pragma unroll
    for (int k = 0; k < kHc; ++k) {
      float mixed[N];
#pragma unroll
      for (int e = 0; e < N; ++e) {
        float residual = 0.0f;
#pragma unroll
        for (int j = 0; j < kHc; ++j) {
          residual = __fadd_rn(residual, __fmul_rn(c[j * kHc + k], in[j][e]));
        }
        mixed[e] = __fadd_rn(__fmul_rn(p[k], out_o[e]), residual);
      }
      store_bf16<N>(x + k * dim + i, mixed);
    }
  }
}

void check_shape(const HcShape& shape, int64_t tokens, const char* what) {
  if (shape.hc != kHc) fail("{}: hc_mult {} is not supported (only {})", what, shape.hc, kHc);
  if (shape.dim <= 0 || tokens < 0 || tokens > int64_t(65535) * kTokenTile) {
    fail("{}: bad shape tokens={} dim={}", what, tokens, shape.dim);
  }
}

bool vectorizable(int64_t dim, const void* a, const void* b) {
  return dim % 8 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

// The mixes' partial sums, then the collapsed input (pre weights and the weighted stream sum).
template <int kMix>
void collapse_input(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                    const HcParams& params, float* workspace, uint16_t* collapsed,
                    cudaStream_t stream) {
  const int64_t width = kHc * shape.dim;
  const auto slices = int(slice_count(width));
  const dim3 grid(unsigned(slices), unsigned((tokens + kTokenTile - 1) / kTokenTile));
  launch_dependent(hc_partial_kernel<kMix>, grid, kPartialThreads, 0, stream, streams, params.fn,
                   tokens, width, slices, workspace);
  const auto launch = [&](auto kernel) {
    launch_dependent(kernel, unsigned(tokens), kFinishThreads, 0, stream, streams, workspace,
                     slices, shape.dim, params.base, params.scale, shape.norm_eps, shape.hc_eps,
                     collapsed);
  };
  if (vectorizable(shape.dim, streams, collapsed)) {
    launch(hc_finish_kernel<kMix, 8>);
  } else {
    launch(hc_finish_kernel<kMix, 1>);
  }
}

}  // namespace

int64_t hc_workspace_floats(int64_t max_tokens, const HcShape& shape) {
  return max_tokens * slice_count(shape.hc * shape.dim) * (kSiteMix + 1);
}

void hc_collapse_input(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                       const HcParams& params, float* workspace, uint16_t* collapsed,
                       cudaStream_t stream) {
  check_shape(shape, tokens, "hc_collapse_input");
  if (tokens == 0) return;
  collapse_input<kSiteMix>(streams, tokens, shape, params, workspace, collapsed, stream);
}

void hc_collapse_weights(int64_t tokens, const HcShape& shape, const HcParams& params,
                         const float* workspace, float* post, float* comb, cudaStream_t stream) {
  check_shape(shape, tokens, "hc_collapse_weights");
  if (shape.sinkhorn_iters < 1) fail("hc_collapse_weights: sinkhorn_iters must be >= 1");
  if (tokens == 0) return;
  const int64_t width = kHc * shape.dim;
  launch_dependent(hc_weights_kernel, unsigned(tokens), 32u, 0, stream, workspace,
                   int(slice_count(width)), width, params.base, params.scale, shape.norm_eps,
                   shape.hc_eps, shape.sinkhorn_iters, post, comb);
}

void hc_collapse(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                 const HcParams& params, float* workspace, uint16_t* collapsed, float* post,
                 float* comb, cudaStream_t stream) {
  hc_collapse_input(streams, tokens, shape, params, workspace, collapsed, stream);
  hc_collapse_weights(tokens, shape, params, workspace, post, comb, stream);
}

void hc_head_collapse(const uint16_t* streams, int64_t tokens, const HcShape& shape,
                      const HcParams& params, float* workspace, uint16_t* collapsed,
                      cudaStream_t stream) {
  check_shape(shape, tokens, "hc_head_collapse");
  if (tokens == 0) return;
  collapse_input<kHc>(streams, tokens, shape, params, workspace, collapsed, stream);
}

void hc_expand(uint16_t* streams, const uint16_t* output, const float* post, const float* comb,
               int64_t tokens, const HcShape& shape, cudaStream_t stream) {
  check_shape(shape, tokens, "hc_expand");
  if (tokens == 0) return;
  const bool vec = vectorizable(shape.dim, streams, output);
  const int64_t per_block = int64_t(kExpandThreads) * (vec ? 8 : 1);
  const dim3 grid(unsigned(tokens),
                  unsigned(std::min<int64_t>(65535, (shape.dim + per_block - 1) / per_block)));
  if (vec) {
    launch_dependent(hc_expand_kernel<8>, grid, kExpandThreads, 0, stream, streams, output, post,
                     comb, shape.dim);
  } else {
    launch_dependent(hc_expand_kernel<1>, grid, kExpandThreads, 0, stream, streams, output, post,
                     comb, shape.dim);
  }
}

}  // namespace dsv4::cuda
