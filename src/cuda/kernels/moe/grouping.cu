// Expert grouping. Counting uses shared-memory atomics (order-free, so deterministic); the
// placement is a stable compaction per expert (one block per expert scans all slots with
// warp ballots; at decode sizes the counting block ranks each slot among the earlier ones), so
// the output never depends on scheduling. Cost: every expert block reads
// all tokens·k ids (from L2): fine at decode sizes, ~E·tokens·k·4 bytes of L2 traffic at
// prefill. Next optimisation: one pass with per-chunk histograms and a decoupled look-back
// scan (as a radix-sort digit pass), fused into the router's epilogue.
#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/gemm/expert_tiles.cuh"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kCountThreads = 1024;
constexpr int kPlaceThreads = 256;
constexpr int kGatherThreads = 128;

static_assert(kGroupInOneLaunchSlots <= kCountThreads,
              "one slot a thread when placing in one launch");

// tiles.counts set: the same block then lists the expert GEMMs' tiles from its counts.
// kPlace (at most kGroupInOneLaunchSlots slots): it also places the slots, thread i slot i at
// its expert's offset plus the number of earlier slots of the same expert (stable, as
// place_kernel), saving a launch at decode sizes.
template <bool kPlace>
__global__ void __launch_bounds__(kCountThreads)
    count_kernel(const int32_t* experts, int64_t slots, int n_experts, int32_t* counts,
                 int32_t* offsets, ExpertTiles tiles, int32_t* order, int32_t* position) {
  wait_for_previous_kernel();
  __shared__ int32_t histogram[kCountThreads];  // counts, then (kPlace) offsets
  __shared__ int32_t slot_experts[kPlace ? kGroupInOneLaunchSlots : 1];
  using Scan = expert_tiles_detail::TileScan<kCountThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  histogram[threadIdx.x] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < slots; i += kCountThreads) {
    const int32_t e = experts[i];
    atomicAdd(&histogram[e], 1);
    if constexpr (kPlace) slot_experts[i] = e;
  }
  __syncthreads();
  const int32_t count = histogram[threadIdx.x];
  int32_t offset = 0;
  Scan(scan_storage).ExclusiveSum(count, offset);
  if (int(threadIdx.x) < n_experts) {
    counts[threadIdx.x] = count;
    offsets[threadIdx.x] = offset;
  }
  if (int(threadIdx.x) == n_experts) offsets[n_experts] = offset;  // = slots
  if constexpr (kPlace) {
    histogram[threadIdx.x] = offset;  // each thread read its own count above
    __syncthreads();
    const auto i = int32_t(threadIdx.x);
    if (i < slots) {
      const int32_t e = slot_experts[i];
      int32_t p = histogram[e];
      for (int32_t j = 0; j < i; ++j) p += slot_experts[j] == e ? 1 : 0;
      order[p] = i;
      position[i] = p;
    }
  }
  if (tiles.counts) {
    __syncthreads();  // the scan storage is reused
    expert_tiles_detail::list_expert_tiles<kCountThreads>(int(threadIdx.x), count, tiles,
                                                          scan_storage);
  }
}

__global__ void __launch_bounds__(kPlaceThreads)
    place_kernel(const int32_t* experts, int64_t slots, const int32_t* offsets, int32_t* order,
                 int32_t* position) {
  wait_for_previous_kernel();
  constexpr int kWarps = kPlaceThreads / 32;
  __shared__ int32_t warp_counts[2][kWarps];
  const int expert = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int32_t next = offsets[expert];
  const int32_t end = offsets[expert + 1];
  for (int64_t base = 0, round = 0; base < slots && next < end; base += kPlaceThreads, ++round) {
    const int64_t i = base + threadIdx.x;
    const bool mine = i < slots && experts[i] == expert;
    const uint32_t ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_counts[round & 1][warp] = __popc(ballot);
    __syncthreads();  // double buffer: the next round writes the other half
    int32_t before = 0, total = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const int32_t c = warp_counts[round & 1][w];
      before += w < warp ? c : 0;
      total += c;
    }
    if (mine) {
      const int32_t p = next + before + __popc(ballot & ((1u << lane) - 1u));
      order[p] = int32_t(i);
      position[i] = p;
    }
    next += total;
  }
}

// Row p of the grouped input: the token's dim FP8 codes (16 bytes an access) and its dim / 128
// activation scales.
__global__ void __launch_bounds__(kGatherThreads)
    gather_quantized_kernel(const uint8_t* codes, const float* scales, const int32_t* order, int k,
                            int64_t dim, uint8_t* out_codes, float* out_scales) {
  wait_for_previous_kernel();
  const int64_t p = blockIdx.x, token = order[p] / k;
  const auto* src = reinterpret_cast<const uint4*>(codes + token * dim);
  auto* dst = reinterpret_cast<uint4*>(out_codes + p * dim);
  for (int64_t i = threadIdx.x; i < dim / 16; i += kGatherThreads) dst[i] = src[i];
  for (int64_t i = threadIdx.x; i < dim / 128; i += kGatherThreads) {
    out_scales[p * (dim / 128) + i] = scales[token * (dim / 128) + i];
  }
}

}  // namespace

void moe_group(const int32_t* experts, int64_t tokens, int64_t k, int64_t n_experts,
               int32_t* counts, int32_t* offsets, int32_t* order, int32_t* position,
               const ExpertTiles* tiles, cudaStream_t stream) {
  if (tokens < 0 || k <= 0 || n_experts <= 0 || n_experts >= kCountThreads ||
      tokens * k > int64_t(INT32_MAX)) {
    fail("moe_group: unsupported shape tokens={} k={} experts={}", tokens, k, n_experts);
  }
  const int64_t slots = tokens * k;
  const ExpertTiles listed = tiles ? *tiles : ExpertTiles{};
  if (slots <= kGroupInOneLaunchSlots) {
    launch_dependent(count_kernel<true>, 1, kCountThreads, 0, stream, experts, slots,
                     int(n_experts), counts, offsets, listed, order, position);
    return;
  }
  launch_dependent(count_kernel<false>, 1, kCountThreads, 0, stream, experts, slots, int(n_experts),
                   counts, offsets, listed, nullptr, nullptr);
  launch_dependent(place_kernel, unsigned(n_experts), kPlaceThreads, 0, stream, experts, slots,
                   offsets, order, position);
}

void moe_gather_quantized(const uint8_t* codes, const float* scales, const int32_t* order,
                          int64_t tokens, int64_t k, int64_t dim, uint8_t* out_codes,
                          float* out_scales, cudaStream_t stream) {
  if (tokens < 0 || k <= 0 || dim <= 0 || dim % 128 != 0) {
    fail("moe_gather_quantized: bad shape tokens={} k={} dim={} (a multiple of 128)", tokens, k,
         dim);
  }
  if (reinterpret_cast<uintptr_t>(codes) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(out_codes) % 16 != 0) {
    fail("moe_gather_quantized: codes misaligned");
  }
  if (tokens == 0) return;
  launch_dependent(gather_quantized_kernel, unsigned(tokens * k), kGatherThreads, 0, stream, codes,
                   scales, order, int(k), dim, out_codes, out_scales);
}

void moe_experts_gate_up(const uint8_t* codes, const float* scales, const int32_t* order,
                         const int32_t* offsets, const ExpertTiles& tiles, int64_t tokens,
                         int64_t k, const PackedLinearsView& w13, uint8_t* grouped_codes,
                         float* grouped_scales, uint16_t* y, cudaStream_t stream) {
  if (expert_gemm_streams(tokens, w13)) {
    expert_scaled_gemm_of_tokens(codes, scales, order, k, offsets, tokens, tiles, w13, {nullptr, y},
                                 stream);
    return;
  }
  moe_gather_quantized(codes, scales, order, tokens, k, w13.first.cols, grouped_codes,
                       grouped_scales, stream);
  expert_scaled_gemm(grouped_codes, grouped_scales, offsets, tokens, tiles, w13, {nullptr, y},
                     stream);
}

}  // namespace dsv4::cuda
