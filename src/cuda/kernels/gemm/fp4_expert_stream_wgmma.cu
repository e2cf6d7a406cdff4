// Routed MXFP4 experts at decode sizes (tile lists of 1-16 tokens, plan_expert_tiles) on sm_90
// FP8 warpgroup MMAs with the weights as the register operand (fp4_expert_gemm.h).
//
// A CTA of two warpgroups owns 64 weight rows (the MMA's M) and walks the tiles y, y + gridDim.y,
// ... of a list; its warpgroups take the first and the second half of the inputs and add their
// sums through shared memory (first half + second half) at the end of a tile. A warpgroup
// streams its half through its own ring of cp.async stages of 128 inputs (one activation scale
// block): its 64 rows' FP4 codes and scales, the tile's token codes and activation scales.
// From kExpertWholeBandMinTokens tokens a step, whole bands: a CTA takes two bands, one a
// warpgroup, each ring running through both halves of the inputs without draining and banking the
// first half's sums at the middle, so that the same two sums are added in the same order (a token's
// bits do not depend on the mode) while a CTA's fill, setup and epilogue are paid once per twice
// the bytes. The wide list's launch runs beside the narrow list's last CTAs.
// The FP4 codes are in the kMmaTiles layout (fp4_fragment_order.cuh): a CTA's rows are one band,
// whose stage of codes (and of scales) is one run. Per stage, lane (g, q) of warp w reads with
// ldmatrix its fragment codes of every block of rows 16w + g and 16w + g + 8 and turns them into
// e4m3 codes of value · 2^-6 (fp4_e4m3_conversion.cuh). One m64nNk32 MMA per 32-input block into
// fresh accumulators, then the block's weight scale and the stage's activation scale in fp32: the
// reference's per-32 partials, up to the FP8 tensor cores' accumulation inside one MMA
// (expert_gemm_test's bound). The same kernel runs at every token count below
// expert_wgmma_min_tokens(), so a token's sums do not depend on how many tokens share its expert
// (decode steps reproduce a prefill). With p.x_order it reads the tokens' own rows in grouped
// order (expert_scaled_gemm_of_tokens), so that no gathered copy has to be made first.
//
// The kernel is bound by instruction issue, not by memory (bench/RESULTS.md, twenty-first
// session): its speed follows the instruction count of a stage in SASS (163 a warp), so a change
// here is worth its count, read with nvdisasm, before it is worth device time.
#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/fp4_e4m3_conversion.cuh"
#include "cuda/kernels/gemm/fp4_expert_gemm.h"
#include "cuda/kernels/gemm/fp4_fragment_order.cuh"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {
namespace {

using namespace fp4_fragments;

constexpr int kGroupThreads = 128;  // a warpgroup
constexpr int kHalves = 2;          // warpgroups per CTA: the two halves of the inputs
constexpr int kThreads = kHalves * kGroupThreads;
constexpr int kRows = 64;  // weight rows per CTA
constexpr int kStepInputs = 128;
static_assert(kStepInputs == kStageInputs && kRows == kBandRows, "a CTA's stage is one band's");
constexpr int kStages = 4;         // 5 or 6: within 1% (H200, dsv4_moe_bench)
constexpr int kMinBlocks = 3;      // narrow list (n8): ≤ 80 registers
constexpr int kMinBlocksWide = 2;  // wide list (n16)

// A slot of a warpgroup's ring for tiles of kTokens (8 or 16) tokens: the token codes (K-major
// 128-byte-swizzled atoms of 8 tokens, 1024-byte aligned), the rows' FP4 codes (64 bytes a
// row, 16-byte chunks XOR-swizzled for ldmatrix), their scales (four per row: floats or ue8m0
// bytes) and the tokens' activation scales. One stride for all four keeps a thread's shared
// addresses at fixed offsets from the slot.
template <int kTokens, bool kFloatScales>
struct Slot {
  static constexpr int kCodesAt = kTokens * kStepInputs;
  static constexpr int kScalesAt = kCodesAt + kRows * kStepInputs / 2;
  static constexpr int kTokenScalesAt = kScalesAt + kRows * (kFloatScales ? 16 : 4);
  static constexpr int kBytes = (kTokenScalesAt + kTokens * 4 + 1023) / 1024 * 1024;
  static constexpr int kRingBytes = kStages * kBytes;
};

// Dynamic shared memory of a CTA: the two rings, 1024-byte aligned from a 1024-byte slack.
template <int kTokens, bool kFloatScales>
__host__ __device__ constexpr int shared_bytes() {
  return kHalves * Slot<kTokens, kFloatScales>::kRingBytes + 1024;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kBlocks = kStepInputs / 32;  // weight scale blocks per stage

// The four weight scales of a row from its shared address in a slot.
template <bool kFloatScales>
__device__ __forceinline__ void row_scales(uint32_t row, float (&s)[kBlocks]) {
  if constexpr (kFloatScales) {
    const float4 v = ld_shared_f32x4(row);
    s[0] = v.x, s[1] = v.y, s[2] = v.z, s[3] = v.w;
  } else {
    const uint32_t codes = ld_shared_u32(row);
#pragma unroll
    for (int j = 1; j < kBlocks; ++j) s[j] = ue8m0_byte_to_float(codes, j);
    // Block 0's without its mask: bits 0-22 are zero and the sign bit (code 1's lowest) is
    // dropped where it is used (|s[0]|, a free operand modifier).
    s[0] = __uint_as_float(codes << 23);
  }
}

template <int kTokens>
__device__ __forceinline__ void block_mma(float (&d)[kTokens / 2], const uint32_t (&a)[4],
                                          uint64_t desc_b) {
  if constexpr (kTokens == 8) {
    wgmma_m64n8k32_e4m3_rs(d, a, desc_b, false);
  } else {
    wgmma_m64n16k32_e4m3_rs(d, a, desc_b, false);
  }
}

// Per thread, a tile's sums of one half of the inputs: split, the second half's (warpgroup 1
// posts, warpgroup 0 adds); whole bands, the thread's own first half.
constexpr int kMaxAcc = 8;  // accumulators a thread of the wide kernel holds
__shared__ float stream_exchange[kMaxAcc][kThreads];

// The x row of grouped row r: r itself, or the token moe_group put there.
__device__ __forceinline__ int64_t token_row(const StreamParams& p, int64_t r) {
  return p.x_order ? p.x_order[r] / p.x_order_k : r;
}

// One warpgroup: the CTA's 64 rows of an expert times the tile's tokens [first_token, +here)
// over the stages [begin, end) of the inputs; acc (per thread: rows 16w + g (+ 8), columns of
// the accumulator fragment) gets the sums times 2^-6.
// kWhole (whole bands): the sums of the first bank_after stages (a multiple of kStages) go to
// the thread's column of stream_exchange, and acc restarts from zero.
template <int kTokens, bool kFloatScales, bool kWhole>
__device__ __forceinline__ void multiply_half(const StreamParams& p, uint8_t* ring_bytes,
                                              const uint8_t* w_expert, const uint8_t* s_expert,
                                              int64_t row0, int64_t first_token, int here,
                                              int begin, int end, int bank_after, int half,
                                              float (&acc)[kTokens / 2]) {
  using S = Slot<kTokens, kFloatScales>;
  constexpr int kAcc = kTokens / 2;
  constexpr int kScaleStep = kFloatScales ? 16 : 4;  // scale bytes per row and stage
  const int t = int(threadIdx.x) % kGroupThreads, warp = t >> 5, lane = t & 31;
  const int g = lane >> 2, q = lane & 3;
  const int n = end - begin;
  const uint32_t ring = shared_address(ring_bytes);

  // Copies: thread t moves block t % 4 of rows t / 4 and t / 4 + 32 (the same swizzle, 2048
  // bytes apart), the scales of row t (t < 64), the 16-byte chunk t % 8 of token t / 8 and the
  // activation scale of token t.
  // The CTA's rows are one band (kMmaTiles layout): a stage of its codes is h · 64 bytes.
  const int64_t stages = p.cols / kStepInputs, h = band_rows(p.rows, row0);
  // Rows past the end keep whatever the slot held: their MMA rows are never stored.
  const int copy_row = t >> 2;
  const int w_copies = int(min(int64_t(2), (h - copy_row + 31) / 32));
  const uint8_t* w_src =
      w_expert + band_stage_offset(p.rows, stages, row0 + copy_row, begin, kStepInputs / 2) +
      16 * (t & 3);
  const int w_stage_bytes = int(h) * (kStepInputs / 2);
  const uint32_t w_dst = opaque(uint32_t(S::kCodesAt + weight_block_offset(copy_row, t & 3)));
  const int64_t scale_row = min(row0 + (t & (kRows - 1)), p.rows - 1);
  const uint8_t* s_src = s_expert + band_stage_offset(p.rows, stages, scale_row, begin, kScaleStep);
  const uint32_t s_dst = opaque(uint32_t(S::kScalesAt + (t & (kRows - 1)) * kScaleStep));
  const auto* x = static_cast<const uint8_t*>(p.x);
  const int x_token = t >> 3;
  const bool x_copied = x_token < here;  // tokens past `here` feed only columns never stored
  const uint8_t* x_src = x + token_row(p, first_token + min(x_token, here - 1)) * p.x_row_stride +
                         int64_t(begin) * kStepInputs + 16 * (t & 7);
  const uint32_t x_dst = opaque(uint32_t(wgmma_gemm::token_code_offset(x_token, t & 7)));
  const int64_t x_scale_cols = p.x_row_stride / kStepInputs;
  const float* xs_src =
      p.x_scales + token_row(p, first_token + min(t, here - 1)) * x_scale_cols + begin;
  const uint32_t xs_dst = opaque(uint32_t(S::kTokenScalesAt + 4 * t));

  int issued = 0;
  const auto issue_stage = [&](uint32_t fill) {
    if (issued < n) {
      if (w_copies > 0) cp_async_16(ring + fill + w_dst, w_src);
      if (w_copies > 1) cp_async_16(ring + fill + w_dst + 2048, w_src + 2048);  // row + 32
      w_src += w_stage_bytes;
      if (t < kRows) {
        if constexpr (kFloatScales) {
          cp_async_16(ring + fill + s_dst, s_src);
        } else {
          cp_async_4(ring + fill + s_dst, s_src);
        }
      }
      s_src += w_stage_bytes / (kStepInputs / 2 / kScaleStep);  // one register for both strides
      if (x_copied) cp_async_16(ring + fill + x_dst, x_src);
      x_src += kStepInputs;
      if (t < here) cp_async_4(ring + fill + xs_dst, xs_src);
      xs_src += 1;
    }
    ++issued;
    cp_async_commit();  // empty past the end: the group count stays uniform
  };

  // ldmatrix rows: lanes 8m .. 8m + 7 address matrix m = (rows 0-7 | 8-15 of the warp) × (block
  // 2h | 2h + 1).
  const int m = lane >> 3, ldm_row = 16 * warp + (lane & 7) + 8 * (m & 1);
  const uint32_t ldm_offset[2] = {
      opaque(uint32_t(S::kCodesAt + weight_block_offset(ldm_row, m >> 1)) + ring),
      opaque(uint32_t(S::kCodesAt + weight_block_offset(ldm_row, 2 + (m >> 1))) + ring)};
  // Row g's scales (row g + 8's follow 8 rows later), the activation scales of columns 2q, 2q + 1
  // (+ 8).
  const uint32_t scale_read = opaque(ring + uint32_t(S::kScalesAt + (16 * warp + g) * kScaleStep));
  const uint32_t token_scale_read = opaque(ring + uint32_t(S::kTokenScalesAt + 8 * q));
  const uint64_t desc_ring = smem_descriptor(ring_bytes, 16, 1024);
  // The table's first word in a vector register for the whole loop (a byte permute takes it
  // from no other kind): as a constant, ptxas kept it in a uniform register and copied it out
  // before each of the 16 permutes of a stage. `never` is 0, but not to ptxas.
  const uint32_t never = uint32_t(threadIdx.x) >> 24;
  const uint2 table = make_uint2(kUnscaledLow + never, kUnscaledHigh);

#pragma unroll
  for (int e = 0; e < kAcc; ++e) acc[e] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue_stage(uint32_t(s * S::kBytes));
  // Stage i reads slot i % kStages and refills slot (i - 1) % kStages (read by stage i - 1) with
  // stage i + kStages - 1. The loop runs kStages stages a trip, so that the slots' offsets (and
  // the copies' offsets from their sources) are constants in the code.
  const auto run_stage = [&](uint32_t read) {
    cp_async_wait<kStages - 2>();
    fence_proxy_async_shared();  // this thread's token copies, for the MMAs' reads
    // Every thread's copies of this stage have landed; every thread is done with the oldest slot.
    if (half == 0) {  // ids fixed at compile time: a computed id reserves all sixteen
      named_barrier_sync(1, kGroupThreads);
    } else {
      named_barrier_sync(2, kGroupThreads);
    }
    issue_stage(read == 0 ? uint32_t(S::kRingBytes - S::kBytes) : read - uint32_t(S::kBytes));

    uint32_t words[kBlocks][2];  // [block][row g, row g + 8]
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t f[4];
      ldmatrix_x4(f, ldm_offset[h] + read);
      words[2 * h][0] = f[0];
      words[2 * h][1] = f[1];
      words[2 * h + 1][0] = f[2];
      words[2 * h + 1][1] = f[3];
    }
    uint32_t a[kBlocks][4];
#pragma unroll
    for (int j = 0; j < kBlocks; ++j) {
      const uint2 top = e2m1x8_to_e4m3(words[j][0], table);
      const uint2 bottom = e2m1x8_to_e4m3(words[j][1], table);
      a[j][0] = top.x, a[j][1] = bottom.x, a[j][2] = top.y, a[j][3] = bottom.y;
    }
    float d[kBlocks][kAcc];
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < kBlocks; ++j) {
      // Block j starts 32 bytes further into each token row (2 in the descriptor's units). One
      // 64-bit add (the address field cannot carry out): a uniform register pair, no moves.
      block_mma<kTokens>(d[j], a[j], desc_ring + uint64_t((read >> 4) + 2 * j));
    }
    wgmma_commit();

    float s_top[kBlocks], s_bottom[kBlocks];
    row_scales<kFloatScales>(scale_read + read, s_top);
    row_scales<kFloatScales>(scale_read + read + 8 * kScaleStep, s_bottom);
    float x_scale[kAcc / 2];  // columns 2q, 2q + 1 (, 8 + 2q, 9 + 2q)
#pragma unroll
    for (int c = 0; c < kAcc / 2; ++c) {
      x_scale[c] = ld_shared_f32(token_scale_read + read + 4 * (8 * (c >> 1) + (c & 1)));
    }

    wgmma_wait<0>();
#pragma unroll
    for (int j = 0; j < kBlocks; ++j) wgmma_fence_operands(d[j]);
      // s_x is a power of two: (Σ_j partial_j · s_w,j) · s_x adds the same products as the
      // reference's Σ_j partial_j · s_x · s_w,j, grouped differently.
#pragma unroll
    for (int e = 0; e < kAcc; ++e) {
      const float* s_w = (e >> 1) & 1 ? s_bottom : s_top;
      float partial = d[0][e] * fabsf(s_w[0]);
#pragma unroll
      for (int j = 1; j < kBlocks; ++j) partial = fmaf(d[j][e], s_w[j], partial);
      acc[e] = fmaf(partial, x_scale[((e >> 2) << 1) | (e & 1)], acc[e]);
    }
  };
  for (int i = 0; i < n; i += kStages) {
    if (kWhole && i == bank_after) {
#pragma unroll
      for (int e = 0; e < kAcc; ++e) {
        stream_exchange[e][threadIdx.x] = acc[e];
        acc[e] = 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kStages; ++u) {
      if (i + u < n) run_stage(uint32_t(u * S::kBytes));
    }
  }
  cp_async_wait<0>();
}

// A thread's sums of a tile (rows 16w + g (+ 8) of row0's band, columns of the accumulator
// fragment): the first half's plus the second's, undoing the codes' 2^-6.
template <int kTokens>
__device__ __forceinline__ void store_tile_sums(const StreamParams& p, int64_t row0,
                                                int64_t first_token, int here, int t,
                                                const float (&first)[kTokens / 2],
                                                const float (&second)[kTokens / 2]) {
  const int lane = t & 31, g = lane >> 2, q = lane & 3, warp = t >> 5;
#pragma unroll
  for (int i = 0; i < kTokens / 2; ++i) {
    const int64_t row = row0 + 16 * warp + g + 8 * ((i >> 1) & 1);
    const int token = 8 * (i >> 2) + 2 * q + (i & 1);
    const float v = (first[i] + second[i]) * kE2m1AsE4m3Unfold;
    if (row >= p.rows || token >= here) continue;
    const int64_t at = (first_token + token) * p.rows + row;
    if (p.y_f32) p.y_f32[at] = v;
    if (p.y_bf16) p.y_bf16[at] = float_to_bf16_bits(v);
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y): rows [64x, 64x + 64) and the tiles y, y + gridDim.y, ... of a tile list of at
// most kTokens tokens a tile (8: the narrow list, 16: the wide one); kWhole (whole bands, see
// the top): bands 2x and 2x + 1, one a warpgroup.
template <int kTokens, bool kFloatScales, bool kWhole>
__global__ void __launch_bounds__(kThreads, kTokens == 8 ? kMinBlocks : kMinBlocksWide)
    fp4_expert_stream_kernel(const __grid_constant__ StreamParams p, const int32_t* tiles,
                             const int32_t* count) {
  // The wide list's launch follows the narrow list's, which waited for their inputs: it runs
  // beside that launch's last CTAs (grid_dependency.cuh).
  constexpr bool kBesideNarrow = kTokens == 16;
  if constexpr (kBesideNarrow) {
    release_next_kernel();
  } else {
    wait_for_previous_kernel();
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kAcc = kTokens / 2;
  extern __shared__ uint8_t rings_unaligned[];
  uint8_t* rings = rings_unaligned + ((1024u - (shared_address(rings_unaligned) & 1023u)) & 1023u);
  // `half` read from lane 0, so that ptxas knows it is the same across the warp: the rings'
  // addresses and the MMA descriptors then live in uniform registers (fewer instructions a
  // stage, and the narrow kernel does not spill).
  const int half = __shfl_sync(~0u, int(threadIdx.x) / kGroupThreads, 0);
  const int t = int(threadIdx.x) % kGroupThreads;
  uint8_t* ring = rings + half * Slot<kTokens, kFloatScales>::kRingBytes;
  const int64_t row0 = (kWhole ? 2 * int64_t(blockIdx.x) + half : int64_t(blockIdx.x)) * kRows;
  const int steps = int(p.cols / kStepInputs), middle = (steps + 1) / 2;
  // No CTA-wide barrier follows on the whole-band path: a warpgroup without a band skips the loop.
  const int32_t n_tiles = kWhole && row0 >= p.rows ? 0 : *count;
  for (int32_t y = int32_t(blockIdx.y); y < n_tiles; y += int32_t(gridDim.y)) {
    const int32_t entry = tiles[y];
    const int64_t e = entry >> 16, tok0 = int64_t(entry & 0xffff) * 16;
    const int64_t first_token = p.expert_offsets[e] + tok0;
    const int here = int(min(p.expert_offsets[e + 1] - first_token, int64_t(16)));
    if (here > (kTokens == 8 ? 4 : 16)) __trap();  // the narrow list's tiles hold at most 4
    const uint8_t* w = p.w + e * p.expert_w_bytes;
    const uint8_t* s = static_cast<const uint8_t*>(p.w_scales) + e * p.expert_scale_bytes;
    float acc[kAcc], other[kAcc];
    if constexpr (kWhole) {
      multiply_half<kTokens, kFloatScales, true>(p, ring, w, s, row0, first_token, here, 0, steps,
                                                 middle, half, acc);
#pragma unroll
      for (int i = 0; i < kAcc; ++i) other[i] = stream_exchange[i][threadIdx.x];
      store_tile_sums<kTokens>(p, row0, first_token, here, t, other, acc);
    } else {
      multiply_half<kTokens, kFloatScales, false>(p, ring, w, s, row0, first_token, here,
                                                  half == 0 ? 0 : middle,
                                                  half == 0 ? middle : steps, 0, half, acc);
      if (half == 1) {
#pragma unroll
        for (int i = 0; i < kAcc; ++i) stream_exchange[i][t] = acc[i];
      }
      __syncthreads();
      if (half == 0) {
#pragma unroll
        for (int i = 0; i < kAcc; ++i) other[i] = stream_exchange[i][t];
        store_tile_sums<kTokens>(p, row0, first_token, here, t, acc, other);
      }
      __syncthreads();  // the exchange and the rings are free for the next tile
    }
  }
  if constexpr (kBesideNarrow) finish_after_previous_kernel();
#else
  (void)p, (void)tiles, (void)count;
  __trap();  // launched only where sm90_kernels_available()
#endif
}

}  // namespace

void launch_fp4_expert_stream(const StreamParams& p, const ExpertTiles& tiles,
                              cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kUe8m0 && p.w_scale_storage != ScaleStorage::kF32) {
    fail("FP4 expert GEMM: the weight scales are neither ue8m0 bytes nor floats");
  }
  if (p.cols % kStepInputs != 0 || p.x_row_stride != p.cols || p.rows_per_group != p.rows) {
    fail("FP4 expert GEMM: {} inputs per row (a multiple of {} is needed)", p.cols, kStepInputs);
  }
  const int64_t steps = p.cols / kStepInputs, bands = (p.rows + kRows - 1) / kRows;
  const bool whole = p.m >= kExpertWholeBandMinTokens && (steps + 1) / 2 % kStages == 0;
  const auto launch = [&](auto tokens, auto float_scales, const int32_t* list, int64_t capacity,
                          const int32_t* count) {
    constexpr int kTokens = decltype(tokens)::value;
    constexpr bool kFloat = decltype(float_scales)::value;
    const auto run = [&](auto whole_bands) {
      constexpr bool kWhole = decltype(whole_bands)::value;
      const dim3 grid(unsigned(kWhole ? (bands + 1) / 2 : bands),
                      unsigned(std::min(capacity, kExpertTileSlots)));
      const auto kernel = fp4_expert_stream_kernel<kTokens, kFloat, kWhole>;
      constexpr int kShared = shared_bytes<kTokens, kFloat>();
      static const bool attributes_set = [&] {
        DSV4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                             cudaSharedmemCarveoutMaxShared));
        DSV4_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
        return true;
      }();
      (void)attributes_set;
      launch_dependent(kernel, grid, kThreads, kShared, stream, p, list, count);
    };
    if (whole) {
      run(std::true_type{});
    } else {
      run(std::false_type{});
    }
  };
  const auto both = [&](auto float_scales) {
    launch(std::integral_constant<int, 8>{}, float_scales, tiles.narrow, tiles.narrow_capacity,
           tiles.counts);
    if (p.m > 4) {
      launch(std::integral_constant<int, 16>{}, float_scales, tiles.wide, tiles.wide_capacity,
             tiles.counts + 1);
    }
  };
  if (p.w_scale_storage == ScaleStorage::kF32) {
    both(std::true_type{});
  } else {
    both(std::false_type{});
  }
}

}  // namespace dsv4::cuda::gemm_detail
