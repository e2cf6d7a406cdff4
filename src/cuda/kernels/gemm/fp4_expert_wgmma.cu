// Routed MXFP4 experts at prefill sizes on sm_90 FP8 warpgroup MMAs (fp4_expert_gemm.h).
//
// A unit of work is a tile of up to 128 of one expert's tokens against 128 of its weight rows,
// 128 inputs (one activation scale block) per stage. A resident CTA per SM walks its share of
// the units as one stream of stages, so that its ring stays full from one unit into the next.
// Warp-specialised, three warpgroups:
//   - a copy warpgroup (one thread per weight row) fills the ring with cp.async: a stage's FP4
//     codes and weight scales (in the kMmaTiles layout of fp4_fragment_order.cuh), its tokens'
//     codes (128-byte swizzled as wgmma reads a K-major B) and activation scales; each thread's
//     copies arrive on the slot's `full` barrier as they land. At the start of a unit it also
//     decides the unit's encoding from its rows' exponents, recorded at load (below);
//   - two consumer warpgroups, 64 weight rows each: each turns its rows' FP4 codes into e4m3
//     MMA fragments in registers (the weights are the MMA's A, M = 64 rows) and multiplies them
//     against the tile's tokens from shared memory (B, N = 128 tokens, or 64 for a tile of at
//     most 64). The conversion of the next stage runs while this stage's MMAs do; the sums are
//     promoted with the activation scales once per stage.
// Two encodings, chosen per unit from its rows' weight scales (DevicePackedLinears::
// row_exponents, order_experts_for_tensor_cores):
//   - scale-folded (the usual case): each 32-input block's scale exponent, relative to its
//     row's largest, is folded into the e4m3 codes, so four chained k32 MMAs cover a stage and
//     their sum is promoted once with the activation scales; the row's largest scale multiplies
//     the result at the end. Needs every block exponent within 11 of its row's largest and
//     power-of-two scales.
//   - exact (any other rows): unscaled codes, one k32 MMA per block into a fresh accumulator,
//     promoted with its weight scale times the activation scales.
// Both follow the official numerics up to the order of fp32 additions and the FP8 tensor
// cores' accumulation inside an MMA chain.
#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/kernels/common/async_copy.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/expert_unit_schedule.cuh"
#include "cuda/kernels/gemm/fp4_e4m3_conversion.cuh"
#include "cuda/kernels/gemm/fp4_expert_gemm.h"
#include "cuda/kernels/gemm/fp4_fragment_order.cuh"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {
namespace {

using namespace wgmma_gemm;
using namespace fp4_fragments;

constexpr int kCopyThreads = 128;  // one thread per weight row
constexpr int kThreads = kConsumerThreads + kCopyThreads;
constexpr int kSlots = 6;  // ring of stages

// A slot: the token codes (1024-byte aligned for the swizzle), the FP4 codes
// (weight_block_offset), the weight scales (float or ue8m0), the activation scales
// (token_scale_slot).
constexpr int kCodesOffset = 0;
constexpr int kWeightsOffset = kCodesOffset + kTokens * kStepInputs;
constexpr int kWeightScalesOffset = kWeightsOffset + kRows * kStepInputs / 2;
constexpr int kTokenScalesOffset = kWeightScalesOffset + kRows * 16;
constexpr int kSlotBytes = (kTokenScalesOffset + kTokenScaleBytes + 1023) / 1024 * 1024;
// After the ring: the barriers, then two units' row exponents and encodings.
constexpr int kBarriersOffset = kSlots * kSlotBytes;
constexpr int kBarriers = 2 * kSlots + 4;
constexpr int kRowHighsOffset = kBarriersOffset + kBarriers * 8;
constexpr int kFoldedOffset = kRowHighsOffset + 2 * kRows * 4;
constexpr int kMaxExperts = int(kFp4ExpertWgmmaMaxExperts);
constexpr int kTileStartsOffset = kFoldedOffset + 16;
constexpr int kSharedBytes = kTileStartsOffset + (kMaxExperts + 1) * 4 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "more shared memory than an sm_90 CTA can have");
static_assert(kStepInputs == kStageInputs && kRows % kBandRows == 0,
              "a stage of a unit's rows is whole bands' stages (kMmaTiles)");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kConsumerRegisters = 232, kCopyRegisters = 40;  // setmaxnreg, per role

struct Ring {
  uint8_t* smem;
  uint64_t* full;        // [kSlots], kCopyThreads arrivals as their copies land
  uint64_t* empty;       // [kSlots], 8 arrivals (consumer warps): the slot may be refilled
  uint64_t* unit_ready;  // [2], kCopyThreads arrivals: a unit's row exponents and encoding are set
  uint64_t* unit_done;   // [2], 8 arrivals: the consumers have stored a unit (sequence parity)
  // Per unit, by sequence parity: each row's largest scale exponent code, and whether the
  // unit uses the scale-folded encoding.
  uint32_t* row_highs;  // [2][kRows]
  int* folded;          // [2]
  __device__ uint8_t* slot(int s) const { return smem + s * kSlotBytes; }
};

// Row r's four weight scale exponent codes of a stage, byte j = block j (a float scale 2^e
// has e + 127 in its exponent bits, and 2^-127 gives 0, as in ue8m0).
template <bool kFloatScales>
__device__ __forceinline__ uint32_t scale_codes(const uint8_t* stage, int row) {
  if constexpr (kFloatScales) {
    const uint4 bits = reinterpret_cast<const uint4*>(stage + kWeightScalesOffset)[row];
    return (bits.x >> 23) | ((bits.y >> 23) << 8) | ((bits.z >> 23) << 16) | ((bits.w >> 23) << 24);
  } else {
    return reinterpret_cast<const uint32_t*>(stage + kWeightScalesOffset)[row];
  }
}

template <bool kFloatScales>
__device__ __forceinline__ float weight_scale(const uint8_t* stage, int row, int block) {
  if constexpr (kFloatScales) {
    return reinterpret_cast<const float*>(stage + kWeightScalesOffset)[row * 4 + block];
  } else {
    return ue8m0_byte_to_float(reinterpret_cast<const uint32_t*>(stage + kWeightScalesOffset)[row],
                               block);
  }
}

// Copy thread `row`'s part of a stage, worked out once per unit: the FP4 codes of its warp's 32
// weight rows (four lanes a row, so that an instruction reads eight whole 64-byte runs), its
// row's weight scales, token `row`'s activation scale, and 16-byte chunk row % 8 of the codes of
// tokens row / 8 + 16i. Token and weight rows past the end keep whatever the slot held: their
// MMA columns and rows are never stored.
template <bool kFloatScales>
struct StageCopies {
  static constexpr int kScaleStep = kFloatScales ? 16 : 4;  // scale bytes per row and stage

  const uint8_t* weight_src;
  const uint8_t* scale_src;
  int weight_stage_bytes, scale_stage_bytes;  // a stage further in the rows' band
  const float* token_scale_src;
  const uint8_t* code_src;
  int64_t code_stride;  // 16 tokens
  uint32_t weight_dst, scale_dst, token_scale_dst, code_dst;
  int weight_groups;  // how many of this thread's four weight rows (8 apart) exist
  int code_chunks;    // how many of this thread's eight token chunks (16 tokens apart) exist
  bool token_scale_valid;

  __device__ void start_unit(const StreamParams& p, const ItemCursor& at, int row) {
    const int64_t first = at.first_token;
    const int here = at.here;
    // Lane l of warp w copies 16-byte chunk l % 4 of rows 32w + l / 4 + 8i, i < 4 (p.rows % 8
    // == 0).
    // (kMmaTiles layout: the four rows are in one 64-row band, 64 bytes apart.)
    const int first_row = (row & ~31) + (row & 31) / 4, chunk = row & 3;
    const int64_t stages = p.cols / kStepInputs;
    weight_groups = int(max(int64_t(0), min(int64_t(4), (p.rows - at.row0 - first_row + 7) / 8)));
    const int64_t weight_row = min(int64_t(at.row0) + first_row, p.rows - 1);
    weight_src = p.w + at.expert * p.expert_w_bytes +
                 band_stage_offset(p.rows, stages, weight_row, 0, kStepInputs / 2) + 16 * chunk;
    weight_stage_bytes = int(band_rows(p.rows, weight_row)) * (kStepInputs / 2);
    weight_dst = kWeightsOffset + weight_block_offset(first_row, chunk);  // + 8 rows: + 512
    // The last row stands in for rows past the end.
    const int64_t scale_row = min(int64_t(at.row0) + row, p.rows - 1);
    scale_src = static_cast<const uint8_t*>(p.w_scales) + at.expert * p.expert_scale_bytes +
                band_stage_offset(p.rows, stages, scale_row, 0, kScaleStep);
    scale_stage_bytes = int(band_rows(p.rows, scale_row)) * kScaleStep;
    scale_dst = kWeightScalesOffset + row * kScaleStep;
    token_scale_valid = row < here;
    token_scale_src = p.x_scales + (first + min(row, here - 1)) * (p.cols / kStepInputs);
    token_scale_dst = kTokenScalesOffset + 4 * token_scale_slot(row);
    const int token = row >> 3, code_chunk = row & 7;
    code_chunks = here > token ? (here - token + 15) / 16 : 0;
    code_src =
        static_cast<const uint8_t*>(p.x) + (first + token) * p.x_row_stride + 16 * code_chunk;
    code_stride = 16 * p.x_row_stride;
    code_dst = kCodesOffset + token_code_offset(token, code_chunk);  // + 16 tokens: + 2048
  }

  __device__ void issue(uint32_t slot, int step) const {
    const uint8_t* weight = weight_src + step * weight_stage_bytes;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (i < weight_groups) cp_async_16(slot + weight_dst + i * 512, weight + i * 512);
    }
    if constexpr (kFloatScales) {
      cp_async_16(slot + scale_dst, scale_src + step * scale_stage_bytes);
    } else {
      cp_async_4(slot + scale_dst, scale_src + step * scale_stage_bytes);
    }
    if (token_scale_valid) cp_async_4(slot + token_scale_dst, token_scale_src + step);
    const uint8_t* code = code_src + step * kStepInputs;
#pragma unroll
    for (int i = 0; i < kTokens / 16; ++i, code += code_stride) {
      if (i < code_chunks) cp_async_16(slot + code_dst + i * 16 * kStepInputs, code);
    }
  }
};

// Row `row` of the cursor's unit: its largest scale exponent code if the scale-folded encoding
// takes it, else 0 (DevicePackedLinears::row_exponents).
__device__ __forceinline__ uint32_t row_exponent(const StreamParams& p, const ItemCursor& at,
                                                 int row) {
  return __ldg(p.w_row_exponents + at.expert * p.rows + min(int64_t(at.row0) + row, p.rows - 1));
}

// The copy warpgroup: every stage of the CTA's units, in order, into the ring. At the start of
// a unit its rows' exponents decide the unit's encoding, published (once the consumers are done
// with the unit two before, which used the same place) before the unit's first copies; each
// unit's exponents are loaded a unit ahead.
template <bool kFloatScales>
__device__ void copy_stages(const StreamParams& p, const Units& units, const Ring& ring, int row) {
  RingCursor<kSlots> slot(0);
  StageCopies<kFloatScales> copies;
  int started = -1;         // the unit (sequence) whose copies `copies` describes
  uint32_t next_high = 0u;  // the row exponent of the CTA's next unit
  for (ItemCursor at(p, units, 0); !at.done(units); at.advance(p, units, 1)) {
    if (at.sequence != started) {
      started = at.sequence;
      copies.start_unit(p, at, row);
      const uint32_t high = started == 0 ? row_exponent(p, at, row) : next_high;
      ItemCursor upcoming = at;
      upcoming.next_unit(p, units);
      if (!upcoming.done(units)) next_high = row_exponent(p, upcoming, row);
      const bool folded = named_barrier_and<1>(kCopyThreads, high != 0u);
      const int buffer = started & 1;
      if (started >= 2) mbarrier_wait(&ring.unit_done[buffer], uint32_t((started >> 1) - 1) & 1u);
      ring.row_highs[buffer * kRows + row] = high;
      if (row == 0) ring.folded[buffer] = folded ? 1 : 0;
      mbarrier_arrive(&ring.unit_ready[buffer]);
    }
    slot.wait_free(ring.empty);
    copies.issue(shared_address(ring.slot(slot.slot)), at.step);
    cp_async_arrive_noinc(&ring.full[slot.slot]);
    slot.advance(1);
  }
}

// A consumer thread's two weight rows (16w + g and + 8 of its warpgroup's 64) in the current
// unit: the scale-folded tables' biases and what the sums are multiplied by at the end.
struct UnitRows {
  FoldedRowTables top{0u}, bottom{0u};
  float scale_top = 1.0f, scale_bottom = 1.0f;
  bool folded = false;
};

__device__ __forceinline__ UnitRows unit_rows(const Ring& ring, int sequence, int row_top) {
  const int buffer = sequence & 1;
  mbarrier_wait(&ring.unit_ready[buffer], uint32_t(sequence >> 1) & 1u);
  UnitRows rows;
  rows.folded = ring.folded[buffer] != 0;
  const uint32_t high_top = ring.row_highs[buffer * kRows + row_top];
  const uint32_t high_bottom = ring.row_highs[buffer * kRows + row_top + 8];
  rows.top = FoldedRowTables(high_top);
  rows.bottom = FoldedRowTables(high_bottom);
  // The sums are scaled by 2^(high − 127 − 6) (folded); the exact encoding's promotion applies
  // the weight scales itself.
  if (rows.folded) {
    rows.scale_top = __uint_as_float((high_top - 6u) << 23);
    rows.scale_bottom = __uint_as_float((high_bottom - 6u) << 23);
  }
  return rows;
}

// The A fragments of a stage's four 32-input blocks for the thread's rows (row_top and + 8 of
// the CTA's 128): two ldmatrix of the FP4 codes, then each code's e4m3 code (folded or not).
template <bool kFloatScales>
__device__ __forceinline__ void convert_stage(const uint8_t* stage, const uint32_t (&ldm_at)[2],
                                              int row_top, const UnitRows& rows,
                                              uint32_t (&a)[4][4]) {
  uint32_t words[4][2];  // [block][row top, row bottom]
  const uint32_t base = shared_address(stage);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t f[4];
    ldmatrix_x4(f, base + ldm_at[h]);
    words[2 * h][0] = f[0];
    words[2 * h][1] = f[1];
    words[2 * h + 1][0] = f[2];
    words[2 * h + 1][1] = f[3];
  }
  if (rows.folded) {
    const uint32_t codes_top = scale_codes<kFloatScales>(stage, row_top);
    const uint32_t codes_bottom = scale_codes<kFloatScales>(stage, row_top + 8);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint2 top = e2m1x8_to_e4m3(words[j][0], rows.top(codes_top, j));
      const uint2 bottom = e2m1x8_to_e4m3(words[j][1], rows.bottom(codes_bottom, j));
      a[j][0] = top.x, a[j][1] = bottom.x, a[j][2] = top.y, a[j][3] = bottom.y;
    }
  } else {
    const uint2 unscaled = make_uint2(kUnscaledLow, kUnscaledHigh);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint2 top = e2m1x8_to_e4m3(words[j][0], unscaled);
      const uint2 bottom = e2m1x8_to_e4m3(words[j][1], unscaled);
      a[j][0] = top.x, a[j][1] = bottom.x, a[j][2] = top.y, a[j][3] = bottom.y;
    }
  }
}

// Keeps MMA register operands allocated until here (after the wait for the MMAs that read them).
__device__ __forceinline__ void hold_fragments(uint32_t (&a)[4][4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(a[j][i])::"memory");
  }
}

// Stores a consumer thread's sums of a finished unit and zeroes them: acc[4c + e] is weight row
// row_top (e < 2) or row_top + 8 of the unit's block, token 8c + 2q + (e & 1) of its tile.
__device__ __forceinline__ void store_unit(const StreamParams& p, const ItemCursor& at,
                                           float2 row_scales, float (&acc)[64], int row_top,
                                           int q) {
  const int64_t n_rows = p.rows, first = at.first_token;
  const int64_t top = at.row0 + row_top, bottom = top + 8;
  const bool rows_in[2] = {top < n_rows, bottom < n_rows};
#pragma unroll
  for (int c = 0; c < 16; ++c) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int token = 8 * c + 2 * q + (e & 1);
      const float v = acc[4 * c + e] * (e < 2 ? row_scales.x : row_scales.y);
      acc[4 * c + e] = 0.0f;
      if (token < at.here && rows_in[e >> 1]) {
        const int64_t index = (first + token) * n_rows + (e < 2 ? top : bottom);
        if (p.y_f32) p.y_f32[index] = v;
        if (p.y_bf16) p.y_bf16[index] = float_to_bf16_bits(v);
      }
    }
  }
}

// Consumer warpgroup w: weight rows [64w, 64w + 64) of each unit against all its tokens.
template <bool kFloatScales>
__device__ void consume(const StreamParams& p, const Units& units, const Ring& ring, int tid) {
  const int warpgroup = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, q = lane & 3;
  const int row_top = 64 * warpgroup + 16 * warp + lane / 4;
  // ldmatrix rows: lanes 8m .. 8m + 7 address matrix m = (rows 0-7 | 8-15 of the warp) × (block
  // 2h | 2h + 1).
  const int m = lane >> 3, ldm_row = 64 * warpgroup + 16 * warp + (lane & 7) + 8 * (m & 1);
  const uint32_t ldm_at[2] = {
      uint32_t(kWeightsOffset + weight_block_offset(ldm_row, m >> 1)),
      uint32_t(kWeightsOffset + weight_block_offset(ldm_row, 2 + (m >> 1)))};
  const uint64_t codes_descriptor = smem_descriptor(ring.smem + kCodesOffset, 16, 1024);
  float acc[64], d[64], d_narrow[32];  // d_narrow: the MMAs of tiles of at most 64 tokens
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = d[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) d_narrow[i] = 0.0f;
  uint32_t fragments[2][4][4];
  UnitRows rows;
  ItemCursor at(p, units, 0);
  RingCursor<kSlots> slot(0);
  // Waits for a stage and turns its FP4 codes into fragments (the unit's rows first, at its start).
  const auto prepare = [&](const ItemCursor& item, const RingCursor<kSlots>& where,
                           uint32_t(&a)[4][4]) {
    mbarrier_wait(&ring.full[where.slot], where.pass & 1u);
    if (item.step == 0) rows = unit_rows(ring, item.sequence, row_top);
    convert_stage<kFloatScales>(ring.slot(where.slot), ldm_at, row_top, rows, a);
  };
  // One stage with fragments `a`, converting the next into `next` meanwhile; false after the
  // CTA's last stage.
  const auto run_stage = [&](uint32_t(&a)[4][4], uint32_t(&next)[4][4]) {
    const uint8_t* stage = ring.slot(slot.slot);
    // prepare() may move `rows` on to the next unit's.
    const bool folded = rows.folded;
    const float2 row_scales = make_float2(rows.scale_top, rows.scale_bottom);
    ItemCursor following = at;
    following.advance(p, units, 1);
    RingCursor<kSlots> following_slot = slot;
    following_slot.advance(1);
    const bool more = !following.done(units);
    // Descriptors advance in 16-byte units of their start address: 32 bytes per block.
    const uint64_t codes = codes_descriptor + (uint64_t(slot.slot * kSlotBytes) >> 4);
    const uint8_t* token_scales = stage + kTokenScalesOffset;
    // The copied token codes, for the MMAs' reads. Here rather than straight after the wait for
    // them (in prepare()): the fence waits for this thread's shared-memory reads in flight, and
    // here the last ones (the promotion's) are done.
    fence_proxy_async_shared();
    if (folded && at.here <= 64) {  // a tile of at most 64 tokens: half the MMA and promotion
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < 4; ++j) wgmma_m64n64k32_e4m3_rs(d_narrow, a[j], codes + 2 * j, j > 0);
      wgmma_commit();
      if (more) prepare(following, following_slot, next);
      float4 scales[4];  // read before the wait, so that their latency hides behind the MMAs
      load_token_scales<64>(token_scales, q, scales);
      wgmma_wait<0>();
      wgmma_fence_operands(d_narrow);
      hold_fragments(a);
      promote<64>(scales, d_narrow, 1.0f, 1.0f, *reinterpret_cast<float(*)[32]>(acc));
    } else if (folded) {
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < 4; ++j) wgmma_m64n128k32_e4m3_rs(d, a[j], codes + 2 * j, j > 0);
      wgmma_commit();
      if (more) prepare(following, following_slot, next);
      float4 scales[8];
      load_token_scales<128>(token_scales, q, scales);
      wgmma_wait<0>();
      wgmma_fence_operands(d);
      hold_fragments(a);
      promote<128>(scales, d, 1.0f, 1.0f, acc);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wgmma_fence();
        wgmma_m64n128k32_e4m3_rs(d, a[j], codes + 2 * j, false);
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_operands(d);
        const float top = weight_scale<kFloatScales>(stage, row_top, j) * kE2m1AsE4m3Unfold;
        const float bottom = weight_scale<kFloatScales>(stage, row_top + 8, j) * kE2m1AsE4m3Unfold;
        promote<128>(token_scales, q, d, top, bottom, acc);
      }
      hold_fragments(a);
      if (more) prepare(following, following_slot, next);
    }
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&ring.empty[slot.slot]);
    if (at.step == units.steps - 1) {  // the unit's last stage
      store_unit(p, at, row_scales, acc, row_top, q);
      __syncwarp();  // the unit's row exponents may be rewritten
      if (lane == 0) mbarrier_arrive(&ring.unit_done[at.sequence & 1]);
    }
    at = following;
    slot = following_slot;
    return more;
  };
  if (at.done(units)) return;
  prepare(at, slot, fragments[0]);
  // Two stages a trip, so that the fragments alternate between two register sets without moves.
  while (run_stage(fragments[0], fragments[1]) && run_stage(fragments[1], fragments[0])) {
  }
}

#endif  // __CUDA_ARCH__ >= 900

// A resident CTA per SM walking its share of the units (Units).
template <bool kFloatScales>
__global__ void __launch_bounds__(kThreads, 1)
    fp4_expert_wgmma_kernel(const __grid_constant__ StreamParams p, int n_experts) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  auto* tile_starts = reinterpret_cast<int*>(smem + kTileStartsOffset);
  // The block scan's scratch is the first slot (not yet in use).
  static_assert(sizeof(TokenTileScan<kThreads>::TempStorage) <= kSlotBytes);
  list_token_tiles<kThreads, kMaxExperts>(p, n_experts, tile_starts, smem);
  auto* barriers = reinterpret_cast<uint64_t*>(smem + kBarriersOffset);
  const Ring ring{smem,
                  barriers,
                  barriers + kSlots,
                  barriers + 2 * kSlots,
                  barriers + 2 * kSlots + 2,
                  reinterpret_cast<uint32_t*>(smem + kRowHighsOffset),
                  reinterpret_cast<int*>(smem + kFoldedOffset)};
  if (tid == 0) {
    for (int s = 0; s < kSlots; ++s) {
      mbarrier_init(&ring.full[s], kCopyThreads);
      mbarrier_init(&ring.empty[s], kConsumerThreads / 32);
    }
    for (int s = 0; s < 2; ++s) {
      mbarrier_init(&ring.unit_ready[s], kCopyThreads);
      mbarrier_init(&ring.unit_done[s], kConsumerThreads / 32);
    }
    fence_barrier_init();
  }
  __syncthreads();
  const int row_blocks = int((p.rows + kRows - 1) / kRows);
  const Units units{row_blocks, int(p.cols / kStepInputs), n_experts, tile_starts,
                    tile_starts[n_experts] * row_blocks};
  if (tid >= kConsumerThreads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kCopyRegisters));
    copy_stages<kFloatScales>(p, units, ring, tid - kConsumerThreads);
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
    consume<kFloatScales>(p, units, ring, tid);
  }
#else
  (void)p;
  (void)n_experts;
  __trap();  // launched only where sm90_kernels_available()
#endif
}

}  // namespace

void launch_fp4_expert_wgmma(const StreamParams& p, int64_t n_experts, cudaStream_t stream) {
  if (p.w_scale_storage != ScaleStorage::kUe8m0 && p.w_scale_storage != ScaleStorage::kF32) {
    fail("FP4 expert GEMM: the weight scales are neither ue8m0 bytes nor floats");
  }
  if (p.cols % kStepInputs != 0 || p.x_row_stride != p.cols || p.rows_per_group != p.rows) {
    fail("FP4 expert GEMM: {} inputs per row (a multiple of {} is needed)", p.cols, kStepInputs);
  }
  if (p.rows % 8 != 0) fail("FP4 expert GEMM: {} rows (a multiple of 8 is needed)", p.rows);
  if (n_experts > kMaxExperts) {
    fail("FP4 expert GEMM: {} experts (at most {})", n_experts, kMaxExperts);
  }
  // The units (int on the device): p.m bounds each expert's tokens.
  const int64_t most_units =
      (p.rows + kRows - 1) / kRows * ((p.m + kTokens - 1) / kTokens * n_experts);
  if (most_units > INT32_MAX / 2) {
    fail("FP4 expert GEMM: {} experts of {} rows and up to {} tokens", n_experts, p.rows, p.m);
  }
  // Every SM, each CTA with its share of the units (the launch's units are counted on the device).
  const dim3 grid(unsigned(current_device_traits().sm_count));
  const auto launch = [&](auto float_scales) {
    const auto kernel = fp4_expert_wgmma_kernel<decltype(float_scales)::value>;
    static const bool configured = [&] {
      DSV4_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
      return true;
    }();
    (void)configured;
    launch_dependent(kernel, grid, kThreads, kSharedBytes, stream, p, int(n_experts));
  };
  if (p.w_scale_storage == ScaleStorage::kF32) {
    launch(std::true_type{});
  } else {
    launch(std::false_type{});
  }
}

}  // namespace dsv4::cuda::gemm_detail
