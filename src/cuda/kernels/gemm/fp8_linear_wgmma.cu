// Dense FP8 linears (e4m3 weights with 128x128 block scales, FP8 activations with per-128
// scales) on sm_90 FP8 warpgroup MMAs, from kFp8LinearWgmmaMinTokens tokens (fp8_linear_wgmma.h).
//
// A CTA takes 128 weight rows (one weight scale block row: the MMA's M, 64 per consumer
// warpgroup), a tile of 128 tokens (the MMA's N) and a range of the inputs, 128 (one scale
// block) a stage. One producer warpgroup copies each stage's weight codes, token codes and
// scales into a ring slot with cp.async (both operands K-major, 128-byte swizzle) and, kLag
// stages later, once its copies have landed, marks the slot full; the two consumer warpgroups
// chain four k32 MMAs over the stage and promote the sum with s_x · s_w into fp32, as
// DeepSeek's reference GEMM does per 128 inputs (the FP8 tensor cores' accumulation inside the
// chain is theirs, not exact fp32). Few CTAs (decode-size m, narrow weights) split the inputs:
// each split writes its partial sums, and sum_splits_kernel adds them in split order. How a
// weight's inputs are split depends on its shape only (input_splits), and a CTA that is not
// split adds the same partial sums in the same order, so a token's output has the same bits
// whatever the batch (decode steps reproduce a prefill).
#include "cuda/kernels/gemm/fp8_linear_wgmma.h"
#include "cuda/kernels/gemm/weight_stream_formats.cuh"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda::gemm_detail {
namespace {

using namespace wgmma_gemm;

constexpr int kProducerThreads = 128;
constexpr int kThreads = kConsumerThreads + kProducerThreads;
constexpr int kSlots = 6;  // ring of stages
constexpr int kLag = 3;    // stages a producer thread has in flight before it marks one full
static_assert(kLag < kSlots);
constexpr int kMinStepsPerSplit = 2;  // a split of fewer stages costs more than it overlaps

// A slot: token codes, weight codes (both [128][128] e4m3, 128-byte swizzle), the tokens'
// activation scales (token_scale_slot), the stage's weight scale.
constexpr int kCodesOffset = 0;
constexpr int kWeightsOffset = kCodesOffset + kTokens * kStepInputs;
constexpr int kTokenScalesOffset = kWeightsOffset + kRows * kStepInputs;
constexpr int kWeightScaleOffset = kTokenScalesOffset + kTokenScaleBytes;
constexpr int kSlotBytes = (kWeightScaleOffset + 16 + 1023) / 1024 * 1024;
constexpr int kBarriersOffset = kSlots * kSlotBytes;
constexpr int kSharedBytes = kBarriersOffset + 2 * kSlots * 8 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "shared memory");

// The CTA's work: weight rows [row0, row0 + 128), tokens [token0, token0 + here), stages
// [step0, step0 + steps), written to y (a launch without splits) or to split `split`'s partial
// sums. `bounds`: where the weight's splits start, counted from step0; the CTA's partial sums
// are added at each (the last one ends its stages).
struct Work {
  const StreamParams& p;
  int64_t row0, token0;
  int here;
  int step0, steps;
  int split, splits;
  float* split_sums;  // [splits][m][rows]
  int input_splits;   // the weight's splits (all of them in this CTA when splits == 1)
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kConsumerRegisters = 216, kProducerRegisters = 72;  // setmaxnreg, per role

// Stage where split s of `input_splits` over `steps` stages starts.
__device__ __forceinline__ int split_start(int steps, int input_splits, int s) {
  return int(int64_t(steps) * s / input_splits);
}

// Producer thread t copies 16-byte chunk t % 8 of weight rows and token rows t / 8 + 16·j
// (a warp instruction covers four whole 128-byte rows), its token's activation scale (t <
// here) and, thread 0, the stage's weight scale. Rows past the end keep whatever the slot
// held: their MMA rows and columns are never stored.
struct StageCopies {
  const uint8_t* weight_src;
  const uint8_t* code_src;
  const float* token_scale_src;
  const float* weight_scale_src;
  int64_t row_stride;           // bytes between consecutive weight rows and token rows (p.cols)
  int weight_rows, token_rows;  // how many of this thread's eight rows exist
  int first, chunk, t, here;

  __device__ StageCopies(const Work& k, int t) : t(t), here(k.here) {
    first = t >> 3;
    chunk = t & 7;
    row_stride = k.p.cols;
    const int64_t weight_here = min(int64_t(kRows), k.p.rows - k.row0);
    weight_rows = weight_here > first ? int((weight_here - first + 15) / 16) : 0;
    token_rows = k.here > first ? (k.here - first + 15) / 16 : 0;
    const int64_t input0 = int64_t(k.step0) * kStepInputs + 16 * chunk;
    weight_src = k.p.w + (k.row0 + first) * row_stride + input0;
    code_src = static_cast<const uint8_t*>(k.p.x) + (k.token0 + first) * row_stride + input0;
    const int64_t scale_cols = k.p.cols / kStepInputs;
    token_scale_src = k.p.x_scales + (k.token0 + min(t, k.here - 1)) * scale_cols + k.step0;
    weight_scale_src =
        static_cast<const float*>(k.p.w_scales) + (k.row0 / kRows) * k.p.w_scale_cols + k.step0;
  }

  __device__ void issue(uint8_t* slot, int step) const {
    const uint32_t base = shared_address(slot);
    const int64_t at = int64_t(step) * kStepInputs;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int row = first + 16 * j;
      if (j < weight_rows) {
        cp_async_16(base + kWeightsOffset + token_code_offset(row, chunk),
                    weight_src + 16 * j * row_stride + at);
      }
      if (j < token_rows) {
        cp_async_16(base + kCodesOffset + token_code_offset(row, chunk),
                    code_src + 16 * j * row_stride + at);
      }
    }
    if (t < here) {
      cp_async_4(base + kTokenScalesOffset + 4 * token_scale_slot(t), token_scale_src + step);
    }
    if (t == 0) cp_async_4(base + kWeightScaleOffset, weight_scale_src + step);
  }
};

__device__ void produce(const Work& k, uint8_t* smem, uint64_t* full, uint64_t* empty, int t) {
  const StageCopies copies(k, t);
  RingCursor<kSlots> fill(0), ready(0);
  for (int n = 0; n < k.steps + kLag; ++n) {
    if (n < k.steps) {
      fill.wait_free(empty);
      copies.issue(smem + fill.slot * kSlotBytes, n);
      fill.advance(1);
    }
    cp_async_commit();  // empty past the end, so that the group count stays uniform
    if (n >= kLag) {
      cp_async_wait<kLag>();  // this thread's copies of stage n − kLag have landed
      fence_proxy_async_shared();
      mbarrier_arrive(&full[ready.slot]);
      ready.advance(1);
    }
  }
}

__device__ void consume(const Work& k, uint8_t* smem, uint64_t* full, uint64_t* empty, int tid) {
  const int warpgroup = tid >> 7, lane = tid & 31, q = lane & 3;
  const int row_a = 64 * warpgroup + 16 * ((tid >> 5) & 3) + lane / 4, row_b = row_a + 8;
  const uint64_t a_descriptor =
      smem_descriptor(smem + kWeightsOffset + warpgroup * 64 * kStepInputs, 16, 1024);
  const uint64_t b_descriptor = smem_descriptor(smem + kCodesOffset, 16, 1024);
  float acc[64], d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = d[i] = 0.0f;
  // Without a split launch the CTA adds its splits' partial sums into `total` in split order.
  float total[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) total[i] = 0.0f;
  int next_bound = k.splits == 1 ? split_start(k.steps, k.input_splits, 1) : k.steps;
  int split = 1;
  RingCursor<kSlots> stage(0);
  for (int n = 0; n < k.steps; ++n) {
    const uint8_t* slot = smem + stage.slot * kSlotBytes;
    mbarrier_wait(&full[stage.slot], stage.pass & 1u);
    // Descriptors advance in 16-byte units of their start address: 32 bytes per k32 block.
    const uint64_t offset = uint64_t(stage.slot * kSlotBytes) >> 4;
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wgmma_m64n128k32_e4m3_ss(d, a_descriptor + offset + 2 * j, b_descriptor + offset + 2 * j,
                               j > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(d);
    const float weight_scale = *reinterpret_cast<const float*>(slot + kWeightScaleOffset);
    promote(slot + kTokenScalesOffset, q, d, weight_scale, weight_scale, acc);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&empty[stage.slot]);
    stage.advance(1);
    if (n + 1 == next_bound && k.splits == 1) {
#pragma unroll
      for (int i = 0; i < 64; ++i) {
        total[i] += acc[i];
        acc[i] = 0.0f;
      }
      next_bound = split_start(k.steps, k.input_splits, ++split);
    }
  }
  if (k.splits > 1) {
#pragma unroll
    for (int i = 0; i < 64; ++i) total[i] = acc[i];
  }
  // acc[i]: row (i & 2 ? row_b : row_a), token 8·(i / 4) + 2q + (i & 1).
  const int64_t rows = k.p.rows;
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    const int64_t row = k.row0 + ((i & 2) ? row_b : row_a);
    const int token = 8 * (i >> 2) + 2 * q + (i & 1);
    if (row >= rows || token >= k.here) continue;
    const int64_t at = (k.token0 + token) * rows + row;
    if (k.splits > 1) {
      k.split_sums[int64_t(k.split) * k.p.m * rows + at] = total[i];
    } else {
      if (k.p.y_f32) k.p.y_f32[at] = total[i];
      if (k.p.y_bf16) k.p.y_bf16[at] = float_to_bf16_bits(total[i]);
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y, z): weight rows [128x, 128x + 128), tokens [128y, 128y + 128), split z of the
// inputs' stages (gridDim.z splits: 1 or input_splits).
__global__ void __launch_bounds__(kThreads, 1)
    fp8_linear_wgmma_kernel(const __grid_constant__ StreamParams p, float* split_sums,
                            int input_splits) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const int steps = int(p.cols / kStepInputs), splits = int(gridDim.z), split = int(blockIdx.z);
  const int step0 = split_start(steps, splits, split);
  const int step1 = split_start(steps, splits, split + 1);
  const int64_t token0 = int64_t(blockIdx.y) * kTokens;
  const Work work{p,          int64_t(blockIdx.x) * kRows,
                  token0,     int(min(p.m - token0, int64_t(kTokens))),
                  step0,      step1 - step0,
                  split,      splits,
                  split_sums, input_splits};
  auto* full = reinterpret_cast<uint64_t*>(smem + kBarriersOffset);
  uint64_t* empty = full + kSlots;
  if (tid == 0) {
    for (int s = 0; s < kSlots; ++s) {
      mbarrier_init(&full[s], kProducerThreads);
      mbarrier_init(&empty[s], kConsumerThreads / 32);
    }
    fence_barrier_init();
  }
  __syncthreads();
  if (tid >= kConsumerThreads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    produce(work, smem, full, empty, tid - kConsumerThreads);
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
    consume(work, smem, full, empty, tid);
  }
#else
  (void)p;
  (void)split_sums;
  (void)input_splits;
  __trap();  // launched only where fp8_linear_wgmma_available()
#endif
}

// y = Σ_s split_sums[s] in split order, 4 outputs a thread.
__global__ void sum_splits_kernel(const float* __restrict__ split_sums, int splits, int64_t count,
                                  float* y_f32, uint16_t* y_bf16) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i >= count) return;
  const int n = int(min(int64_t(4), count - i));
  float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int s = 0; s < splits; ++s) {
    for (int e = 0; e < n; ++e) sum[e] += split_sums[int64_t(s) * count + i + e];
  }
  for (int e = 0; e < n; ++e) {
    if (y_f32) y_f32[i + e] = sum[e];
    if (y_bf16) y_bf16[i + e] = float_to_bf16_bits(sum[e]);
  }
}

}  // namespace

bool fp8_linear_wgmma_available() {
#if defined(DSV4_SM90_KERNELS)
  return current_device_traits().major == 9;
#else
  return false;
#endif
}

int64_t fp8_linear_split_floats() {
  return int64_t(2) * current_device_traits().sm_count * kRows * kTokens;
}

void launch_fp8_linear_wgmma(const StreamParams& p, SplitSums split_sums, cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kF32 || p.cols % kStepInputs != 0 ||
      p.x_row_stride != p.cols || p.rows_per_group != p.rows || p.w_row_bytes != p.cols) {
    fail(
        "FP8 linear: {}x{} weight with {} scales (float scales and a multiple of {} inputs "
        "are needed)",
        p.rows, p.cols, p.w_scale_storage == ScaleStorage::kF32 ? "float" : "non-float",
        kStepInputs);
  }
  if (p.m <= 0 || p.rows <= 0) return;
  const int64_t row_blocks = (p.rows + kRows - 1) / kRows,
                token_tiles = (p.m + kTokens - 1) / kTokens;
  const int64_t steps = p.cols / kStepInputs, ctas = row_blocks * token_tiles;
  // The weight's splits fill one wave (a CTA an SM) with one token tile. A launch splits when
  // its tiles alone leave SMs idle and the scratch holds the partial sums; otherwise each CTA
  // adds the same splits' sums itself.
  const int sms = current_device_traits().sm_count;
  const int64_t input_splits =
      std::clamp<int64_t>(sms / row_blocks, 1, std::max<int64_t>(1, steps / kMinStepsPerSplit));
  const bool split = input_splits > 1 && ctas < sms &&
                     split_sums.floats / (p.m * p.rows) >= input_splits && split_sums.data;
  const int64_t splits = split ? input_splits : 1;
  static const bool configured = [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(
        fp8_linear_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
    return true;
  }();
  (void)configured;
  const dim3 grid{unsigned(row_blocks), unsigned(token_tiles), unsigned(splits)};
  fp8_linear_wgmma_kernel<<<grid, kThreads, kSharedBytes, stream>>>(p, split_sums.data,
                                                                    int(input_splits));
  DSV4_CUDA_CHECK(cudaGetLastError());
  if (splits > 1) {
    const int64_t count = p.m * p.rows, threads = 256;
    const int64_t blocks = (count + 4 * threads - 1) / (4 * threads);
    sum_splits_kernel<<<unsigned(blocks), unsigned(threads), 0, stream>>>(
        split_sums.data, int(splits), count, p.y_f32, p.y_bf16);
    DSV4_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace dsv4::cuda::gemm_detail
