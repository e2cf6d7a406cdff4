#include "cuda/model/random_fill.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/runtime/check.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxTableK = 32;

// splitmix64's output of counter `index` of stream `seed` (as SplitMix64 in synthetic_random.h).
__device__ __forceinline__ uint64_t random_bits(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Mean 0, variance 1, bounded by ±2·sqrt(3): synthetic_random.h's normalish.
__device__ __forceinline__ float normalish(uint64_t bits) {
  uint32_t sum = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) sum += uint32_t((bits >> (16 * i)) & 0xffffu);
  const float total = (float(sum) + 2.0f) * (1.0f / 65536.0f);
  return (total - 2.0f) * 1.7320508f;
}

__device__ __forceinline__ float random_normal(uint64_t seed, uint64_t index) {
  return normalish(random_bits(seed, index));
}

constexpr float kNormalBound = 3.4641017f;  // 2·sqrt(3)

// Smallest power of two >= x > 0 (host side).
float power_of_two_ceil_host(float x) {
  int exponent = 0;
  const float mantissa = std::frexp(x, &exponent);  // x = mantissa · 2^exponent, [0.5, 1)
  return std::ldexp(1.0f, mantissa == 0.5f ? exponent - 1 : exponent);
}

unsigned grid_for(int64_t items, int64_t per_block) {
  return unsigned(std::clamp<int64_t>((items + per_block - 1) / per_block, 1, int64_t(1) << 16));
}

__global__ void fill_fp8_kernel(uint8_t* codes, int64_t n, float* scales, int64_t n_scales,
                                float stddev, float scale, uint64_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    codes[i] = quantize_e4m3(stddev * random_normal(seed, uint64_t(i)), scale);
    if (i < n_scales) scales[i] = scale;
  }
}

// One thread per 32-value block: 16 bytes of packed e2m1 and one ue8m0 scale.
__global__ void fill_fp4_kernel(uint8_t* packed, uint8_t* scales, int64_t blocks, float stddev,
                                uint64_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    float v[32];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      v[j] = stddev * random_normal(seed, uint64_t(b * 32 + j));
      amax = fmaxf(amax, fabsf(v[j]));
    }
    const float scale = fp4_block_scale(amax);
    uint32_t words[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int j = 0; j < 32; ++j)
      words[j / 8] |= uint32_t(quantize_e2m1(v[j], scale)) << (4 * (j % 8));
    reinterpret_cast<uint4*>(packed)[b] = make_uint4(words[0], words[1], words[2], words[3]);
    scales[b] = power_of_two_to_ue8m0(scale);
  }
}

__global__ void fill_bf16_kernel(uint16_t* out, int64_t n, float mean, float stddev,
                                 uint64_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = float_to_bf16_bits(mean + stddev * random_normal(seed, uint64_t(i)));
  }
}

__global__ void fill_f32_kernel(float* out, int64_t n, float mean, float stddev, bool bf16_exact,
                                uint64_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = mean + stddev * random_normal(seed, uint64_t(i));
    out[i] = bf16_exact ? round_bf16(v) : v;
  }
}

// Rejection sampling: redraw an expert until it differs from the row's earlier picks.
__global__ void fill_expert_table_kernel(int32_t* out, int64_t tokens, int32_t k, int32_t experts,
                                         uint64_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < tokens; t += stride) {
    int32_t picks[kMaxTableK];
    uint64_t draw = uint64_t(t) << 16;
    for (int32_t j = 0; j < k; ++j) {
      bool fresh = false;
      while (!fresh) {
        picks[j] = int32_t(random_bits(seed, draw++) % uint64_t(experts));
        fresh = true;
        for (int32_t i = 0; i < j; ++i) fresh &= picks[i] != picks[j];
      }
      out[t * k + j] = picks[j];
    }
  }
}

// One warp per row; the rope dims rounded to bf16 first, as the encoder expects.
__global__ void fill_kv_rows_kernel(PagedRowsView view, int32_t slot, int64_t count, int nope,
                                    int rope, uint64_t seed) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= count) return;
  const uint64_t base = uint64_t(row) * uint64_t(nope + rope);
  const auto get = [&](int i) {
    const float v = random_normal(seed, base + uint64_t(i));
    return i >= nope ? round_bf16(v) : v;
  };
  encode_kv_row_warp(get, nope, rope, view.row_bytes, view.row(slot, row), nullptr,
                     int(threadIdx.x % 32));
}

__global__ void fill_index_keys_kernel(PagedRowsView view, int32_t slot, int64_t count, int dim,
                                       uint64_t seed) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= count) return;
  const uint64_t base = uint64_t(row) * uint64_t(dim);
  const auto get = [&](int i) { return random_normal(seed, base + uint64_t(i)); };
  encode_index_key_warp(get, dim, view.row(slot, row), int(threadIdx.x % 32));
}

}  // namespace

void fill_random_fp8(uint8_t* codes, float* scales, int64_t rows, int64_t cols, float stddev,
                     uint64_t seed, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || !(stddev > 0.0f)) {
    fail("fill_random_fp8: bad shape [{}, {}] or stddev {}", rows, cols, stddev);
  }
  const int64_t n = rows * cols, n_scales = ((rows + 127) / 128) * ((cols + 127) / 128);
  // Every |value| <= stddev · 2·sqrt(3), so values / scale stay within ±448.
  const float scale = power_of_two_ceil_host(stddev * kNormalBound / 448.0f);
  fill_fp8_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(codes, n, scales, n_scales,
                                                                  stddev, scale, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_fp4(uint8_t* packed, uint8_t* scales, int64_t rows, int64_t cols, float stddev,
                     uint64_t seed, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || cols % 32 != 0 || !(stddev > 0.0f)) {
    fail("fill_random_fp4: bad shape [{}, {}] or stddev {}", rows, cols, stddev);
  }
  if (reinterpret_cast<uintptr_t>(packed) % 16 != 0) fail("fill_random_fp4: unaligned values");
  const int64_t blocks = rows * (cols / 32);
  fill_fp4_kernel<<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(packed, scales, blocks,
                                                                       stddev, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_bf16(uint16_t* out, int64_t n, float mean, float stddev, uint64_t seed,
                      cudaStream_t stream) {
  if (n <= 0) return;
  fill_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, n, mean, stddev, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_f32(float* out, int64_t n, float mean, float stddev, bool bf16_exact,
                     uint64_t seed, cudaStream_t stream) {
  if (n <= 0) return;
  fill_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, n, mean, stddev, bf16_exact,
                                                                  seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_expert_table(int32_t* out, int64_t tokens, int32_t k, int32_t experts,
                              uint64_t seed, cudaStream_t stream) {
  if (k <= 0 || k > kMaxTableK || k > experts) {
    fail("fill_random_expert_table: {} distinct experts per token out of {} (at most {})", k,
         experts, kMaxTableK);
  }
  if (tokens <= 0) return;
  fill_expert_table_kernel<<<grid_for(tokens, kThreads), kThreads, 0, stream>>>(out, tokens, k,
                                                                                experts, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_kv_rows(const PagedRowsView& view, int32_t slot, int64_t count, int32_t head_dim,
                         int32_t rope_dim, uint64_t seed, cudaStream_t stream) {
  const int32_t nope = head_dim - rope_dim;
  if (nope <= 0 || nope % 64 != 0 || rope_dim % 2 != 0 ||
      view.row_bytes < nope + 2 * rope_dim + nope / 64) {
    fail("fill_random_kv_rows: head_dim {} / rope_dim {} do not fit a {}-byte row", head_dim,
         rope_dim, view.row_bytes);
  }
  if (count <= 0) return;
  fill_kv_rows_kernel<<<unsigned((count + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
      view, slot, count, nope, rope_dim, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

void fill_random_index_keys(const PagedRowsView& view, int32_t slot, int64_t count, int32_t dim,
                            uint64_t seed, cudaStream_t stream) {
  if (dim <= 0 || dim % 32 != 0 || view.row_bytes < dim / 2 + dim / 32) {
    fail("fill_random_index_keys: dim {} does not fit a {}-byte key", dim, view.row_bytes);
  }
  if (count <= 0) return;
  fill_index_keys_kernel<<<unsigned((count + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
      view, slot, count, dim, seed);
  DSV4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dsv4::cuda
