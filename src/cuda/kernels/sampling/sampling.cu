// Sampling kernels.
//  1. chunk_max_kernel (grid chunks × rows): max and first arg-max of each 4096-logit chunk.
//  2. keys_kernel (same grid): the row max from the chunk partials; per logit a sort key
//     (row << 31 | bits of max − l, which orders by descending probability) and the chunk's
//     Σ exp((l − max) / T) in double (fixed-order reduction: deterministic).
//  3. cub::DeviceRadixSort over all rows at once (stable, so equal probabilities keep the
//     lower id first, as the CPU's comparator).
//  4. select_kernel (one 512-thread block per row): block scans in double over the sorted
//     probabilities, tile by tile until the nucleus is complete, then again up to the chosen
//     token; the sums are fixed-order (deterministic) but not the CPU's sequential order, so the
//     choice could differ only when u · mass or top_p · total falls within ~1e-15 relative of
//     a cumulative boundary.
// Costs at vocab 129280: two reads of the logits, a 31-bit radix sort of (8 + 4)-byte pairs,
// and for flat distributions a full scan of the sorted row by one block. Next optimisation:
// skip the full sort — radix-select the key where the sorted mass crosses top_p · total from
// mass histograms, then sort only the candidates above it (usually a few hundred tokens).
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <climits>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/sampling/sampling.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kChunkThreads = 256;
constexpr int kChunk = 4096;  // logits per chunk block
constexpr int kSelectThreads = 512;
constexpr int kKeyBits = 31;  // magnitude bits of (max − l) >= 0

int row_bits(int64_t rows) {
  int bits = 0;
  while ((int64_t(1) << bits) < rows) ++bits;
  return bits;
}

// The first maximum of a block's (value, index) pairs: higher value, or equal and lower index.
struct ArgMax {
  float value;
  int32_t index;
};
struct ArgMaxOp {
  __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
    if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
    return a;
  }
};

__global__ void __launch_bounds__(kChunkThreads)
    chunk_max_kernel(const float* logits, int64_t vocab, int chunks, float* chunk_max,
                     int32_t* chunk_argmax) {
  wait_for_previous_kernel();
  const int64_t row = blockIdx.y;
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int64_t end = begin + kChunk < vocab ? begin + kChunk : vocab;
  const float* l = logits + row * vocab;
  ArgMax best{-INFINITY, INT32_MAX};
  for (int64_t i = begin + threadIdx.x; i < end; i += kChunkThreads) {
    const float v = l[i];
    if (v > best.value || best.index == INT32_MAX) best = {v, int32_t(i)};
  }
  using Reduce = cub::BlockReduce<ArgMax, kChunkThreads>;
  __shared__ typename Reduce::TempStorage storage;
  best = Reduce(storage).Reduce(best, ArgMaxOp());
  if (threadIdx.x == 0) {
    chunk_max[row * chunks + blockIdx.x] = best.value;
    chunk_argmax[row * chunks + blockIdx.x] = best.index;
  }
}

// The row's first maximum from its chunk partials (chunks are in index order).
__device__ ArgMax row_argmax(const float* chunk_max, const int32_t* chunk_argmax, int chunks) {
  ArgMax best{chunk_max[0], chunk_argmax[0]};
  for (int c = 1; c < chunks; ++c) {
    if (chunk_max[c] > best.value) best = {chunk_max[c], chunk_argmax[c]};
  }
  return best;
}

__global__ void __launch_bounds__(kChunkThreads)
    keys_kernel(const float* logits, int64_t vocab, int chunks, const float* chunk_max,
                const int32_t* chunk_argmax, const float* temperature, uint64_t* keys,
                double* chunk_total) {
  wait_for_previous_kernel();
  const int64_t row = blockIdx.y;
  __shared__ float max_shared;
  if (threadIdx.x == 0) {
    max_shared = row_argmax(chunk_max + row * chunks, chunk_argmax + row * chunks, chunks).value;
  }
  __syncthreads();
  const float max = max_shared;
  const double t = double(temperature[row]);
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int64_t end = begin + kChunk < vocab ? begin + kChunk : vocab;
  const float* l = logits + row * vocab;
  double total = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kChunkThreads) {
    const float d = __fsub_rn(l[i], max);  // <= 0; as the CPU, logits[i] − max in fp32
    keys[row * vocab + i] = (uint64_t(row) << kKeyBits) | (__float_as_uint(d) & 0x7fffffffu);
    if (t > 0.0) total += exp(double(d) / t);
  }
  using Reduce = cub::BlockReduce<double, kChunkThreads>;
  __shared__ typename Reduce::TempStorage storage;
  total = Reduce(storage).Sum(total);
  if (threadIdx.x == 0) chunk_total[row * chunks + blockIdx.x] = total;
}

__global__ void iota_kernel(int32_t* ids, int64_t rows, int64_t vocab) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * vocab;
       i += int64_t(gridDim.x) * blockDim.x) {
    ids[i] = int32_t(i % vocab);
  }
}

__global__ void argmax_finish_kernel(const float* chunk_max, const int32_t* chunk_argmax,
                                     int chunks, int64_t rows, int32_t* out) {
  wait_for_previous_kernel();
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < rows) {
    out[row] = row_argmax(chunk_max + row * chunks, chunk_argmax + row * chunks, chunks).index;
  }
}

struct SelectShared {
  typename cub::BlockScan<double, kSelectThreads>::TempStorage scan;
  int warp_first[kSelectThreads / 32];
  int first;
  double last;
};

// For one tile: the lowest thread index whose flag is set (INT_MAX if none) and the last
// thread's inclusive prefix (the carry into the next tile).
__device__ void tile_result(bool flag, double inclusive, SelectShared& sh, int& first,
                            double& last) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t ballot = __ballot_sync(0xffffffffu, flag);
  if (lane == 0) sh.warp_first[warp] = ballot ? warp * 32 + __ffs(int(ballot)) - 1 : INT_MAX;
  if (threadIdx.x == kSelectThreads - 1) sh.last = inclusive;
  __syncthreads();
  if (warp == 0) {
    int v = lane < kSelectThreads / 32 ? sh.warp_first[lane] : INT_MAX;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      v = min(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    if (lane == 0) sh.first = v;
  }
  __syncthreads();
  first = sh.first;
  last = sh.last;
}

__global__ void __launch_bounds__(kSelectThreads)
    select_kernel(const uint64_t* sorted_keys, const int32_t* sorted_ids, int64_t vocab, int chunks,
                  const float* chunk_max, const int32_t* chunk_argmax, const double* chunk_total,
                  const float* temperature, const float* top_p, const double* uniform,
                  int32_t* out) {
  wait_for_previous_kernel();
  __shared__ SelectShared sh;
  const int64_t row = blockIdx.x;
  const float temp = temperature[row];
  if (temp == 0.0f) {
    if (threadIdx.x == 0) {
      out[row] = row_argmax(chunk_max + row * chunks, chunk_argmax + row * chunks, chunks).index;
    }
    return;
  }
  const double t = double(temp);
  double total = 0.0;
  for (int c = 0; c < chunks; ++c) total += chunk_total[row * chunks + c];
  const double threshold = double(top_p[row]) * total;
  const uint64_t* keys = sorted_keys + row * vocab;
  // The probability at sorted position i: d = −(magnitude bits) is the CPU's logits − max.
  const auto prob = [&](int64_t i) {
    if (i >= vocab) return 0.0;
    const float d = -__uint_as_float(uint32_t(keys[i]) & 0x7fffffffu);
    return exp(double(d) / t);
  };
  // Pass 1: keep = the CPU's nucleus size, mass = its probability mass.
  int64_t keep = vocab;
  double mass = 0.0, carry = 0.0;
  bool found = false;
  for (int64_t base = 0; base < vocab; base += kSelectThreads) {
    const int64_t i = base + threadIdx.x;
    double inclusive;
    cub::BlockScan<double, kSelectThreads>(sh.scan).InclusiveSum(prob(i), inclusive);
    inclusive += carry;
    int first;
    double last;
    tile_result(i < vocab && inclusive >= threshold, inclusive, sh, first, last);
    if (first != INT_MAX) {
      keep = base + first + 1;
      __syncthreads();  // every thread has read sh.last (tile_result) before it is reused
      if (int(threadIdx.x) == first) sh.last = inclusive;
      __syncthreads();
      mass = sh.last;
      found = true;
      break;
    }
    carry = last;
  }
  if (!found) mass = carry;  // the nucleus is the whole row
  // Pass 2: the first position whose cumulative mass exceeds u · mass (same sums as pass 1).
  const double u = uniform[row] * mass;
  int64_t chosen = keep - 1;
  carry = 0.0;
  for (int64_t base = 0; base < keep; base += kSelectThreads) {
    const int64_t i = base + threadIdx.x;
    double inclusive;
    cub::BlockScan<double, kSelectThreads>(sh.scan).InclusiveSum(prob(i), inclusive);
    inclusive += carry;
    int first;
    double last;
    tile_result(i < keep && u < inclusive, inclusive, sh, first, last);
    if (first != INT_MAX) {
      chosen = base + first;
      break;
    }
    carry = last;
  }
  if (threadIdx.x == 0) out[row] = sorted_ids[row * vocab + chosen];
}

}  // namespace

TokenSampler::TokenSampler(int64_t max_rows, int64_t vocab)
    : max_rows_(max_rows),
      vocab_(vocab),
      chunks_((vocab + kChunk - 1) / kChunk),
      chunk_max_(size_t(max_rows * chunks_)),
      chunk_argmax_(size_t(max_rows * chunks_)),
      chunk_total_(size_t(max_rows * chunks_)),
      keys_(size_t(max_rows * vocab)),
      sorted_keys_(size_t(max_rows * vocab)),
      ids_(size_t(max_rows * vocab)),
      sorted_ids_(size_t(max_rows * vocab)) {
  if (max_rows <= 0 || vocab <= 0 || max_rows * vocab > int64_t(INT32_MAX) ||
      kKeyBits + row_bits(max_rows) > 64) {
    fail("TokenSampler: unsupported size {} rows x {} logits", max_rows, vocab);
  }
  size_t bytes = 0;
  DSV4_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, keys_.data(), sorted_keys_.data(), ids_.data(), sorted_ids_.data(),
      int(max_rows * vocab), 0, kKeyBits + row_bits(max_rows)));
  sort_storage_ = DeviceBuffer<unsigned char>(bytes);
  iota_kernel<<<1024, 256>>>(ids_.data(), max_rows, vocab);
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

void TokenSampler::argmax(const float* logits, int64_t rows, int32_t* out, cudaStream_t stream) {
  if (rows < 0 || rows > max_rows_) fail("TokenSampler::argmax: {} rows (max {})", rows, max_rows_);
  if (rows == 0) return;
  const int chunks = int(chunks_);
  launch_dependent(chunk_max_kernel, dim3(unsigned(chunks), unsigned(rows)), kChunkThreads, 0,
                   stream, logits, vocab_, chunks, chunk_max_.data(), chunk_argmax_.data());
  launch_dependent(argmax_finish_kernel, unsigned((rows + 127) / 128), 128, 0, stream,
                   chunk_max_.data(), chunk_argmax_.data(), chunks, rows, out);
}

void TokenSampler::sample(const float* logits, int64_t rows, const float* temperature,
                          const float* top_p, const double* uniform, int32_t* out,
                          cudaStream_t stream) {
  if (rows < 0 || rows > max_rows_) fail("TokenSampler::sample: {} rows (max {})", rows, max_rows_);
  if (rows == 0) return;
  const int chunks = int(chunks_);
  const dim3 grid{unsigned(chunks), unsigned(rows)};
  launch_dependent(chunk_max_kernel, grid, kChunkThreads, 0, stream, logits, vocab_, chunks,
                   chunk_max_.data(), chunk_argmax_.data());
  launch_dependent(keys_kernel, grid, kChunkThreads, 0, stream, logits, vocab_, chunks,
                   chunk_max_.data(), chunk_argmax_.data(), temperature, keys_.data(),
                   chunk_total_.data());
  const int items = int(rows * vocab_), end_bit = kKeyBits + row_bits(rows);
  size_t bytes = 0;
  DSV4_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_.data(), sorted_keys_.data(),
                                                  ids_.data(), sorted_ids_.data(), items, 0,
                                                  end_bit, stream));
  if (bytes > sort_storage_.size()) fail("TokenSampler: sort scratch too small");
  DSV4_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_storage_.data(), bytes, keys_.data(),
                                                  sorted_keys_.data(), ids_.data(),
                                                  sorted_ids_.data(), items, 0, end_bit, stream));
  launch_dependent(select_kernel, unsigned(rows), kSelectThreads, 0, stream, sorted_keys_.data(),
                   sorted_ids_.data(), vocab_, chunks, chunk_max_.data(), chunk_argmax_.data(),
                   chunk_total_.data(), temperature, top_p, uniform, out);
}

}  // namespace dsv4::cuda
