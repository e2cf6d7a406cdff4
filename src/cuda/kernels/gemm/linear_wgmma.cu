// Dense linears on sm_90 warpgroup MMAs (linear_wgmma.h): FP8 weights (e4m3, 128x128 block
// scales) with FP8 activations, and bf16 weights with bf16 activations.
//
// A CTA takes 128 weight rows (the MMA's M, 64 per consumer warpgroup), a tile of kN tokens
// (the MMA's N: 16 up to 16 tokens, else 128) and a range of the inputs, 128 bytes of every row
// a stage (128 FP8 inputs, one scale block; 64 bf16 inputs). One producer warpgroup copies each
// stage's weight rows, token rows and scales into a ring slot with cp.async (both operands
// K-major, 128-byte swizzle) and, kLag stages later, once its copies have landed, marks the
// slot full; the two consumer warpgroups chain four MMAs over the stage. FP8 sums are promoted
// with s_x · s_w into fp32 per stage, as DeepSeek's reference GEMM does per 128 inputs (the
// FP8 tensor cores' accumulation inside the chain is theirs, not exact fp32); bf16 products
// are exact and accumulate in the MMAs in fp32.
//
// Few CTAs (decode-size m, narrow weights) split the inputs (up to 16 ways where the device
// holds clusters that large, else 8): each split's partial sums are added in split order by the
// tile's splits together, launched as one thread block cluster that reads them from each other's
// shared memory (16-token tiles: no global round trip, no second launch), or by sum_splits_kernel
// from global scratch (128-token tiles, whose sums one cluster would add too slowly). How a
// weight's inputs are split depends on its shape and the device only (input_splits), a CTA that
// is not split adds the same partial sums in the same order, and an output column of an MMA does
// not depend on the others, so a token's output has the same bits whatever the batch (decode
// steps reproduce a prefill).
#include "cuda/kernels/gemm/linear_wgmma.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/cluster.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/weight_stream_formats.cuh"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {
namespace {

using namespace wgmma_gemm;

constexpr int kProducerThreads = 128;
constexpr int kThreads = kConsumerThreads + kProducerThreads;
constexpr int kStageBytes = 128;      // of every weight and token row
constexpr int kLag = 3;               // stages a producer thread has in flight before one is full
constexpr int kMinStepsPerSplit = 2;  // a split of fewer stages costs more than it overlaps
constexpr int kFewTokens = 16;        // the narrow token tile (the wide one: kTokens)
constexpr int kMaxSplits = 16;        // a split tile's CTAs are one cluster: a non-portable size
constexpr int kPortableSplits = 8;    // where the device cannot hold a cluster of kMaxSplits

// FP8 e4m3 operands with block scales, or bf16 operands.
struct Fp8Operands {
  static constexpr bool kScaled = true;
  static constexpr int kElementBytes = 1;
};
struct Bf16Operands {
  static constexpr bool kScaled = false;
  static constexpr int kElementBytes = 2;
};

// The shared memory of a kN-token tile: kSlots ring slots of token rows, weight rows (both
// [rows][128 bytes], 128-byte swizzle), the tokens' activation scales (token_scale_slot) and
// the stage's weight scale; then the full / empty barriers. The narrow tile fits two CTAs an SM.
template <int kN>
struct Layout {
  static constexpr int kSlots = kN == kFewTokens ? 5 : 6;
  static constexpr int kCodesOffset = 0;
  static constexpr int kWeightsOffset = kCodesOffset + kN * kStageBytes;
  static constexpr int kTokenScalesOffset = kWeightsOffset + kRows * kStageBytes;
  static constexpr int kWeightScaleOffset = kTokenScalesOffset + kTokenScaleBytes;
  static constexpr int kSlotBytes = (kWeightScaleOffset + 16 + 1023) / 1024 * 1024;
  static constexpr int kBarriersOffset = kSlots * kSlotBytes;
  static constexpr int kSharedBytes = kBarriersOffset + 2 * kSlots * 8 + 1024;
  static constexpr int kCtasPerSm = kN == kFewTokens ? 2 : 1;
  static_assert(kLag < kSlots);
  static_assert(kSharedBytes * kCtasPerSm <= 227 * 1024, "shared memory");
  static_assert(kN != kFewTokens || kN * kRows * 4 <= kSlotBytes,
                "a narrow tile's split sums fit the first ring slot");
};

// The CTA's work: weight rows [row0, row0 + 128), tokens [token0, token0 + here), stages
// [step0, step0 + steps), written to y (a launch without splits) or to split `split`'s partial
// sums.
struct Work {
  const StreamParams& p;
  int64_t row0, token0;
  int here;
  int step0, steps;
  int split, splits;
  float* split_sums;  // [splits][m][rows] (128-token tiles)
  int input_splits;   // the weight's splits (all of them in this CTA when splits == 1)
};

// y[at] = v, fp32 and / or bf16.
__device__ __forceinline__ void store_output(const StreamParams& p, int64_t at, float v) {
  if (p.y_f32) p.y_f32[at] = v;
  if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(v);
}

// Σ_s load(s) over the first `splits` (at most kMaxSplits) in split order, the order a CTA that
// is not split adds them in, with every load in flight before the adds.
template <class Load>
__device__ __forceinline__ float add_in_split_order(int splits, Load load) {
  float part[kMaxSplits];
#pragma unroll
  for (int s = 0; s < kMaxSplits; ++s) part[s] = s < splits ? load(s) : 0.0f;
  float sum = 0.0f;
#pragma unroll
  for (int s = 0; s < kMaxSplits; ++s) {
    if (s < splits) sum += part[s];
  }
  return sum;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Stage where split s of `input_splits` over `steps` stages starts.
__device__ __forceinline__ int split_start(int steps, int input_splits, int s) {
  return int(int64_t(steps) * s / input_splits);
}

// Producer thread t copies 16-byte chunk t % 8 of weight rows and token rows t / 8 + 16·j
// (a warp instruction covers four whole 128-byte rows), its token's activation scale (t <
// here) and, thread 0, the stage's weight scale. Rows past the end keep whatever the slot
// held: their MMA rows and columns are never stored.
template <class Operands, int kN>
struct StageCopies {
  using L = Layout<kN>;
  const uint8_t* weight_src;
  const uint8_t* code_src;
  const float* token_scale_src;
  const float* weight_scale_src;
  int64_t weight_stride, token_stride;  // bytes between consecutive weight rows, token rows
  int weight_rows, token_rows;          // how many of this thread's rows exist
  int first, chunk, t, here;

  __device__ StageCopies(const Work& k, int t) : t(t), here(k.here) {
    const StreamParams& p = k.p;
    first = t >> 3;
    chunk = t & 7;
    weight_stride = p.w_row_bytes;
    token_stride = p.x_row_stride * Operands::kElementBytes;
    const int64_t weight_here = min(int64_t(kRows), p.rows - k.row0);
    weight_rows = weight_here > first ? int((weight_here - first + 15) / 16) : 0;
    token_rows = k.here > first ? min(kN / 16, (k.here - first + 15) / 16) : 0;
    const int64_t byte0 = int64_t(k.step0) * kStageBytes + 16 * chunk;
    // Every row of the CTA is in one input group (the host checks).
    const int64_t group_byte0 = (k.row0 / p.rows_per_group) * p.cols * Operands::kElementBytes;
    weight_src = p.w + (k.row0 + first) * weight_stride + byte0;
    code_src =
        static_cast<const uint8_t*>(p.x) + (k.token0 + first) * token_stride + group_byte0 + byte0;
    if constexpr (Operands::kScaled) {
      const int64_t scale_cols = p.cols / 128;
      token_scale_src = p.x_scales + (k.token0 + min(t, k.here - 1)) * scale_cols + k.step0;
      weight_scale_src =
          static_cast<const float*>(p.w_scales) + (k.row0 / kRows) * p.w_scale_cols + k.step0;
    }
  }

  __device__ void issue(uint8_t* slot, int step) const {
    const uint32_t base = shared_address(slot);
    const int64_t at = int64_t(step) * kStageBytes;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int row = first + 16 * j;
      if (j < weight_rows) {
        cp_async_16(base + L::kWeightsOffset + token_code_offset(row, chunk),
                    weight_src + 16 * j * weight_stride + at);
      }
      if (j < token_rows) {
        cp_async_16(base + L::kCodesOffset + token_code_offset(row, chunk),
                    code_src + 16 * j * token_stride + at);
      }
    }
    if constexpr (Operands::kScaled) {
      if (t < here && t < kN) {
        cp_async_4(base + L::kTokenScalesOffset + 4 * token_scale_slot(t), token_scale_src + step);
      }
      if (t == 0) cp_async_4(base + L::kWeightScaleOffset, weight_scale_src + step);
    }
  }
};

template <class Operands, int kN>
__device__ void produce(const Work& k, uint8_t* smem, uint64_t* full, uint64_t* empty, int t) {
  using L = Layout<kN>;
  const StageCopies<Operands, kN> copies(k, t);
  RingCursor<L::kSlots> fill(0), ready(0);
  for (int n = 0; n < k.steps + kLag; ++n) {
    if (n < k.steps) {
      fill.wait_free(empty);
      copies.issue(smem + fill.slot * L::kSlotBytes, n);
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

// d (+)= the four MMAs of a stage (32 bytes of K each: descriptors advance by 2).
template <class Operands, int kN>
__device__ __forceinline__ void stage_mmas(float (&d)[kN / 2], uint64_t a, uint64_t b,
                                           bool accumulate) {
  wgmma_fence();
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const bool keep = accumulate || j > 0;
    if constexpr (Operands::kScaled && kN == kFewTokens) {
      wgmma_m64n16k32_e4m3_ss(d, a + 2 * j, b + 2 * j, keep);
    } else if constexpr (Operands::kScaled) {
      wgmma_m64n128k32_e4m3_ss(d, a + 2 * j, b + 2 * j, keep);
    } else if constexpr (kN == kFewTokens) {
      wgmma_m64n16k16_bf16_ss(d, a + 2 * j, b + 2 * j, keep);
    } else {
      wgmma_m64n128k16_bf16_ss(d, a + 2 * j, b + 2 * j, keep);
    }
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(d);
}

// After the splits' MMAs (16-token tiles, a cluster of the tile's splits, split = rank): each
// CTA posts its sums in its own shared memory; then the CTAs add every split's sums in split
// order (as a CTA that is not split does), each a share of the tile's outputs, reading the
// others' shared memory. `total[i]`: row (i & 2 ? row_b : row_a), token 8·(i / 4) + 2q + (i & 1).
template <int kN>
__device__ void add_splits_in_cluster(const Work& k, uint8_t* smem, int tid,
                                      const float (&total)[kN / 2], int row_a, int row_b, int q) {
  // Over the first ring slot, once both consumer warpgroups are past their last MMA (the
  // producer's copies have all landed by then).
  auto* sums = reinterpret_cast<float*>(smem);  // [kN tokens][kRows]
  named_barrier_sync(1, kConsumerThreads);
#pragma unroll
  for (int i = 0; i < kN / 2; ++i) {
    sums[(8 * (i >> 2) + 2 * q + (i & 1)) * kRows + ((i & 2) ? row_b : row_a)] = total[i];
  }
  cluster_sync();
  const int64_t rows = k.p.rows;
  const int rows_here = int(min(int64_t(kRows), rows - k.row0));
  for (int o = k.split * kConsumerThreads + tid; o < k.here * kRows;
       o += k.splits * kConsumerThreads) {
    const float sum = add_in_split_order(
        k.splits, [&](int s) { return load_cluster_shared_f32(sums + o, uint32_t(s)); });
    const int r = o % kRows;
    if (r < rows_here) store_output(k.p, (k.token0 + o / kRows) * rows + k.row0 + r, sum);
  }
  cluster_sync();  // no CTA leaves while the others still read its sums
}

template <class Operands, int kN>
__device__ void consume(const Work& k, uint8_t* smem, uint64_t* full, uint64_t* empty, int tid) {
  using L = Layout<kN>;
  constexpr int kValues = kN / 2;  // accumulator values a thread holds
  const int warpgroup = tid >> 7, lane = tid & 31, q = lane & 3;
  const int row_a = 64 * warpgroup + 16 * ((tid >> 5) & 3) + lane / 4, row_b = row_a + 8;
  const uint64_t a_descriptor =
      smem_descriptor(smem + L::kWeightsOffset + warpgroup * 64 * kStageBytes, 16, 1024);
  const uint64_t b_descriptor = smem_descriptor(smem + L::kCodesOffset, 16, 1024);
  // acc: this split's sums; total: the splits' sums added in split order (a CTA that is not
  // split adds them itself; a split's CTA has one, its own).
  float acc[kValues], d[kValues], total[kValues];
#pragma unroll
  for (int i = 0; i < kValues; ++i) acc[i] = d[i] = total[i] = 0.0f;
  int next_bound = k.splits == 1 ? split_start(k.steps, k.input_splits, 1) : k.steps;
  int split = 1;
  bool fresh = true;  // bf16: the next stage starts a split's sums
  RingCursor<L::kSlots> stage(0);
  for (int n = 0; n < k.steps; ++n) {
    const uint8_t* slot = smem + stage.slot * L::kSlotBytes;
    mbarrier_wait(&full[stage.slot], stage.pass & 1u);
    const uint64_t offset = uint64_t(stage.slot * L::kSlotBytes) >> 4;
    if constexpr (Operands::kScaled) {
      stage_mmas<Operands, kN>(d, a_descriptor + offset, b_descriptor + offset, false);
      const float weight_scale = *reinterpret_cast<const float*>(slot + L::kWeightScaleOffset);
      promote<kN>(slot + L::kTokenScalesOffset, q, d, weight_scale, weight_scale, acc);
    } else {
      stage_mmas<Operands, kN>(acc, a_descriptor + offset, b_descriptor + offset, !fresh);
      fresh = false;
    }
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&empty[stage.slot]);
    stage.advance(1);
    if (n + 1 == next_bound) {
#pragma unroll
      for (int i = 0; i < kValues; ++i) {
        total[i] += acc[i];
        acc[i] = 0.0f;
      }
      fresh = true;
      next_bound = split_start(k.steps, k.input_splits, ++split);
    }
  }
  // total[i]: row (i & 2 ? row_b : row_a), token 8·(i / 4) + 2q + (i & 1).
  if constexpr (kN == kFewTokens) {
    if (k.splits > 1) {
      add_splits_in_cluster<kN>(k, smem, tid, total, row_a, row_b, q);
      return;
    }
  }
  const int64_t rows = k.p.rows;
  float* out = k.splits > 1 ? k.split_sums + int64_t(k.split) * k.p.m * rows : nullptr;
#pragma unroll
  for (int i = 0; i < kValues; ++i) {
    const int64_t row = k.row0 + ((i & 2) ? row_b : row_a);
    const int token = 8 * (i >> 2) + 2 * q + (i & 1);
    if (row >= rows || token >= k.here) continue;
    const int64_t at = (k.token0 + token) * rows + row;
    if (out) {
      out[at] = total[i];
    } else {
      store_output(k.p, at, total[i]);
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y, z): weight rows [128x, 128x + 128), tokens [kN·y, kN·y + kN), split z of the
// inputs' stages (gridDim.z splits: 1 or input_splits; 16-token tiles' splits are a cluster).
template <class Operands, int kN>
__global__ void __launch_bounds__(kThreads, Layout<kN>::kCtasPerSm)
    linear_wgmma_kernel(const __grid_constant__ StreamParams p, float* split_sums,
                        int input_splits) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using L = Layout<kN>;
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const int steps = int(p.w_row_bytes / kStageBytes), splits = int(gridDim.z);
  const int split = int(blockIdx.z);
  const int step0 = split_start(steps, splits, split);
  const int step1 = split_start(steps, splits, split + 1);
  const int64_t token0 = int64_t(blockIdx.y) * kN;
  const Work work{p,          int64_t(blockIdx.x) * kRows,
                  token0,     int(min(p.m - token0, int64_t(kN))),
                  step0,      step1 - step0,
                  split,      splits,
                  split_sums, input_splits};
  auto* full = reinterpret_cast<uint64_t*>(smem + L::kBarriersOffset);
  uint64_t* empty = full + L::kSlots;
  if (tid == 0) {
    for (int s = 0; s < L::kSlots; ++s) {
      mbarrier_init(&full[s], kProducerThreads);
      mbarrier_init(&empty[s], kConsumerThreads / 32);
    }
    fence_barrier_init();
  }
  __syncthreads();
  // The wide tile's consumers take registers from the producers (setmaxnreg, per role: 2 · 216
  // + 72 = 504, the 168 a thread the launch grants, times three warpgroups).
  constexpr bool kMoveRegisters = kN != kFewTokens;
  constexpr int kConsumerRegisters = 216, kProducerRegisters = 72;
  if (tid >= kConsumerThreads) {
    if constexpr (kMoveRegisters) {
      asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    }
    produce<Operands, kN>(work, smem, full, empty, tid - kConsumerThreads);
    if (kN == kFewTokens && splits > 1) {  // the consumers' two cluster barriers
      cluster_sync();
      cluster_sync();
    }
  } else {
    if constexpr (kMoveRegisters) {
      asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
    }
    consume<Operands, kN>(work, smem, full, empty, tid);
  }
#else
  (void)p;
  (void)split_sums;
  (void)input_splits;
  __trap();  // launched only where sm90_kernels_available()
#endif
}

// y = Σ_s split_sums[s] in split order (as a CTA that is not split adds them), one output a
// thread.
__global__ void sum_splits_kernel(const __grid_constant__ StreamParams p, const float* split_sums,
                                  int splits) {
  wait_for_previous_kernel();
  const int64_t count = p.m * p.rows, at = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (at >= count) return;
  store_output(p, at, add_in_split_order(splits, [&](int s) {
                 return __ldcg(split_sums + int64_t(s) * count + at);
               }));
}

// The kernel's shared memory and (few-token tiles) cluster size limits, set once.
template <class Operands, int kN>
void configure_tile_kernel() {
  static const bool configured = [] {
    const auto kernel = linear_wgmma_kernel<Operands, kN>;
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Layout<kN>::kSharedBytes));
    if (kN == kFewTokens) {
      DSV4_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    }
    return true;
  }();
  (void)configured;
}

// How many ways a weight's inputs may split on the current device: kMaxSplits where a cluster
// of that many few-token CTAs fits the device's GPCs, else the portable kPortableSplits. Read
// once per device, so that a weight's splits stay the same from one call to the next.
int64_t max_input_splits() {
  static std::mutex mutex;
  static std::array<int64_t, 64> splits{};
  int device = 0;
  DSV4_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  int64_t& most = splits.at(size_t(device));
  if (most == 0) {
    configure_tile_kernel<Fp8Operands, kFewTokens>();
    cudaLaunchAttribute cluster{};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = kMaxSplits;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(1, 1, kMaxSplits);
    config.blockDim = dim3(kThreads);
    config.dynamicSmemBytes = Layout<kFewTokens>::kSharedBytes;
    config.attrs = &cluster;
    config.numAttrs = 1;
    int clusters = 0;
    const cudaError_t status = cudaOccupancyMaxActiveClusters(
        &clusters, linear_wgmma_kernel<Fp8Operands, kFewTokens>, &config);
    if (status != cudaSuccess) (void)cudaGetLastError();  // the query's error, not a launch's
    most = status == cudaSuccess && clusters > 0 ? kMaxSplits : kPortableSplits;
  }
  return most;
}

template <class Operands, int kN>
void launch_tile(const StreamParams& p, dim3 grid, float* split_sums, int input_splits,
                 cudaStream_t stream) {
  constexpr int kShared = Layout<kN>::kSharedBytes;
  const auto kernel = linear_wgmma_kernel<Operands, kN>;
  configure_tile_kernel<Operands, kN>();
  if (kN == kFewTokens && grid.z > 1) {
    launch_dependent_clusters(kernel, grid, dim3(1, 1, grid.z), kThreads, kShared, stream, p,
                              split_sums, input_splits);
  } else {
    launch_dependent(kernel, grid, kThreads, kShared, stream, p, split_sums, input_splits);
  }
}

}  // namespace

int64_t linear_wgmma_split_floats() {
  return int64_t(2) * current_device_traits().sm_count * kRows * kTokens;
}

void launch_linear_wgmma(const StreamParams& p, WeightFormat format, SplitSums split_sums,
                         cudaStream_t stream) {
  const bool fp8 = format == WeightFormat::kFp8;
  static_assert(Fp8Operands::kScaled && !Bf16Operands::kScaled);
  const int element_bytes = fp8 ? Fp8Operands::kElementBytes : Bf16Operands::kElementBytes;
  if ((format != WeightFormat::kFp8 && format != WeightFormat::kBF16) ||
      (fp8 && p.w_scale_storage != ScaleStorage::kF32) || p.cols % 128 != 0 ||
      p.w_row_bytes != p.cols * element_bytes ||
      (p.rows_per_group % kRows != 0 && p.rows_per_group != p.rows) ||
      (p.x_row_stride * element_bytes) % 16 != 0) {
    fail(
        "linear on warpgroup MMAs: a {}x{} {} weight in groups of {} rows ({} inputs a token) "
        "is not supported",
        p.rows, p.cols, weight_format_name(format), p.rows_per_group, p.x_row_stride);
  }
  if (p.m <= 0 || p.rows <= 0) return;
  const bool few = p.m <= kFewTokens;
  const int64_t tokens_per_tile = few ? kFewTokens : kTokens;
  const int64_t row_blocks = (p.rows + kRows - 1) / kRows;
  const int64_t token_tiles = (p.m + tokens_per_tile - 1) / tokens_per_tile;
  const int64_t steps = p.w_row_bytes / kStageBytes;
  // The weight's splits fill one wave of wide CTAs (one an SM) for one token tile, up to a
  // cluster's worth. A launch splits when its tiles alone leave SMs idle (128-token tiles: and
  // the scratch holds the partial sums); otherwise each CTA adds the same splits' sums itself.
  const int sms = current_device_traits().sm_count;
  const int64_t input_splits = std::clamp<int64_t>(
      sms / row_blocks, 1, std::clamp<int64_t>(steps / kMinStepsPerSplit, 1, max_input_splits()));
  const bool split =
      input_splits > 1 && row_blocks * token_tiles < sms &&
      (few || (split_sums.data && split_sums.floats / (p.m * p.rows) >= input_splits));
  const dim3 grid{unsigned(row_blocks), unsigned(token_tiles), unsigned(split ? input_splits : 1)};
  if (fp8 && few) {
    launch_tile<Fp8Operands, kFewTokens>(p, grid, split_sums.data, int(input_splits), stream);
  } else if (fp8) {
    launch_tile<Fp8Operands, kTokens>(p, grid, split_sums.data, int(input_splits), stream);
  } else if (few) {
    launch_tile<Bf16Operands, kFewTokens>(p, grid, split_sums.data, int(input_splits), stream);
  } else {
    launch_tile<Bf16Operands, kTokens>(p, grid, split_sums.data, int(input_splits), stream);
  }
  if (split && !few) {
    const int64_t count = p.m * p.rows, threads = 128;
    launch_dependent(sum_splits_kernel, unsigned((count + threads - 1) / threads),
                     unsigned(threads), 0, stream, p, split_sums.data, int(input_splits));
  }
}

}  // namespace dsv4::cuda::gemm_detail
