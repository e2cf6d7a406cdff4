// Routed MXFP4 experts at prefill sizes on sm_90 FP8 warpgroup MMAs (fp4_expert_gemm.h).
//
// A unit of work is a tile of up to 128 of one expert's tokens (two wgmma M of 64) against 128
// of its weight rows, 128 inputs (one activation scale block) per stage. A resident CTA per SM
// walks its share of the units as one stream of stages, so that its rings stay full from one
// unit into the next (the loads of the next unit overlap the stores of the last). Warp-
// specialised, four warpgroups:
//   - two producer warpgroups (one thread per weight row each) take alternate stages: copy a
//     stage's token codes (in the 128-byte-swizzled K-major layout wgmma reads), FP4 codes,
//     weight and activation scales into a slot of the load ring with cp.async, and kLag of
//     their stages later convert its FP4 codes into an e4m3 weight tile (fp4_e4m3_conversion.cuh)
//     of the weight-tile ring, then signal `converted`;
//   - two consumer warpgroups (64 tokens each, against all 128 rows) run the MMAs with both
//     operands in shared memory, promote the results, and free the load slot and the weight tile.
// Two encodings, chosen per unit from its rows' weight scales:
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
#include "cuda/kernels/common/numerics.cuh"
#include "cuda/kernels/common/wgmma.cuh"
#include "cuda/kernels/gemm/expert_unit_schedule.cuh"
#include "cuda/kernels/gemm/fp4_e4m3_conversion.cuh"
#include "cuda/kernels/gemm/fp4_expert_gemm.h"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda::gemm_detail {
namespace {

using namespace wgmma_gemm;

constexpr int kProducerThreads = 128;  // per producer warpgroup: one thread per weight row
constexpr int kProducers = 2;          // producer warpgroups, taking alternate stages
constexpr int kThreads = kConsumerThreads + kProducers * kProducerThreads;
constexpr int kLoadSlots = 6;    // ring of copied stages
constexpr int kWeightTiles = 3;  // ring of converted weight tiles
// A producer converts a stage kLag of its own stages after copying it (2 · kLag stages in
// all, fewer than kLoadSlots: a slot it waits for is one whose conversion came earlier).
constexpr int kLag = 2;
static_assert(kProducers * kLag < kLoadSlots);

// A load slot: the token codes (1024-byte aligned for the swizzle), the FP4 codes (64 bytes
// a row, 16-byte chunks XOR-swizzled), the weight scales (float or ue8m0), the activation
// scales (token_scale_slot). A weight tile: 128 rows of 128 e4m3 codes, 128-byte swizzle.
constexpr int kCodesOffset = 0;
constexpr int kWeightsOffset = kCodesOffset + kTokens * kStepInputs;
constexpr int kWeightScalesOffset = kWeightsOffset + kRows * kStepInputs / 2;
constexpr int kTokenScalesOffset = kWeightScalesOffset + kRows * 16;
constexpr int kLoadSlotBytes = (kTokenScalesOffset + kTokenScaleBytes + 1023) / 1024 * 1024;
constexpr int kWeightTileBytes = kRows * kStepInputs;
constexpr int kWeightTilesOffset = kLoadSlots * kLoadSlotBytes;
// After the rings: the barriers, then two units' row scales and encodings.
constexpr int kBarriersOffset = kWeightTilesOffset + kWeightTiles * kWeightTileBytes;
constexpr int kBarriers = kWeightTiles + kLoadSlots + kWeightTiles + 2;
constexpr int kRowScalesOffset = kBarriersOffset + kBarriers * 8;
constexpr int kFoldedOffset = kRowScalesOffset + 2 * kRows * 4;
constexpr int kMaxExperts = int(kFp4ExpertWgmmaMaxExperts);
constexpr int kTileStartsOffset = kFoldedOffset + 16;
constexpr int kSharedBytes = kTileStartsOffset + (kMaxExperts + 1) * 4 + 1024;
static_assert(kSharedBytes <= 227 * 1024, "more shared memory than an sm_90 CTA can have");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kConsumerRegisters = 152, kProducerRegisters = 104;  // setmaxnreg, per role

// Largest spread of block exponents within a row that the scale-folded encoding takes: s ≥ −5,
// where every e2m1 value times 2^s is an e4m3 normal (fp4_e4m3_conversion.cuh).
constexpr uint32_t kMaxFoldedSpread = 11;

// Byte offset of row r's 16-byte chunk c among a stage's FP4 codes: the XOR spreads the eight
// rows a quarter-warp reads at once over the banks.
__device__ __forceinline__ int weight_chunk(int row, int chunk) {
  return row * 64 + 16 * (chunk ^ ((row >> 1) & 3));
}

struct Ring {
  uint8_t* smem;
  uint64_t* converted;    // [kWeightTiles], kProducerThreads arrivals: the weight tile is ready
  uint64_t* load_free;    // [kLoadSlots], 8 arrivals (consumer warps): the slot may be refilled
  uint64_t* weight_free;  // [kWeightTiles], 8 arrivals: the weight tile may be rewritten
  uint64_t* unit_done;    // [2], 8 arrivals: the consumers have stored a unit (sequence parity)
  // Per unit, by sequence parity: what each row's sums are multiplied by at the end, and
  // whether the weight tiles carry the block scales (scale-folded encoding).
  float* row_scales;  // [2][kRows]
  int* folded;        // [2]
  __device__ uint8_t* load_slot(int slot) const { return smem + slot * kLoadSlotBytes; }
  __device__ uint8_t* weight_tile(int slot) const {
    return smem + kWeightTilesOffset + slot * kWeightTileBytes;
  }
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

// A row's largest scale exponent code (over all its inputs) and whether the scale-folded
// encoding can take the row.
template <bool kFloatScales>
__device__ uint32_t scan_row_scales(const uint8_t* row_scales, int64_t blocks, bool& foldable) {
  uint32_t high = 0, low = 0xffffffffu;
  bool powers_of_two = true;
  if constexpr (kFloatScales) {
    const auto* bits = reinterpret_cast<const uint32_t*>(row_scales);
    for (int64_t i = 0; i < blocks; ++i) {
      const uint32_t b = __ldg(bits + i), code = b >> 23;
      powers_of_two &= b == 0x00400000u || ((b & 0x807fffffu) == 0u && code != 0u);
      high = max(high, code);
      low = min(low, code);
    }
  } else {
    uint32_t high4 = 0u, low4 = 0xffffffffu;
    const auto fold = [&](uint32_t codes) {
      high4 = __vmaxu4(high4, codes);
      low4 = __vminu4(low4, codes);
    };
    if (blocks % 16 == 0 && reinterpret_cast<uintptr_t>(row_scales) % 16 == 0) {
      // 16 bytes a load, eight loads in flight: the scan's latency is one or two trips to
      // memory rather than one per word.
      const auto* chunks = reinterpret_cast<const uint4*>(row_scales);
#pragma unroll 8
      for (int64_t i = 0; i < blocks / 16; ++i) {
        const uint4 codes = __ldg(chunks + i);
        fold(codes.x), fold(codes.y), fold(codes.z), fold(codes.w);
      }
    } else {
      const auto* words = reinterpret_cast<const uint32_t*>(row_scales);
#pragma unroll 8
      for (int64_t i = 0; i < blocks / 4; ++i) fold(__ldg(words + i));
    }
    high = max(max(high4 & 0xffu, (high4 >> 8) & 0xffu), max((high4 >> 16) & 0xffu, high4 >> 24));
    low = min(min(low4 & 0xffu, (low4 >> 8) & 0xffu), min((low4 >> 16) & 0xffu, low4 >> 24));
  }
  // The sums are scaled by 2^(high − 127 − 6) at the end: a normal float.
  foldable = powers_of_two && high - low <= kMaxFoldedSpread && high >= 7u && high <= 254u;
  return high;
}

// The weight scales of row `row` of the cursor's unit (the last row stands in for rows past the
// end).
template <bool kFloatScales>
__device__ __forceinline__ const uint8_t* row_scale_codes(const StreamParams& p,
                                                          const ItemCursor& at, int row) {
  constexpr int64_t scale_bytes = kFloatScales ? 4 : 1;
  return static_cast<const uint8_t*>(p.w_scales) + at.expert * p.expert_scale_bytes +
         min(int64_t(at.row0) + row, p.rows - 1) * p.w_scale_cols * scale_bytes;
}

// Where token t's activation scale sits in a load slot.
__device__ __forceinline__ uint32_t token_scale_offset(int t) {
  return kTokenScalesOffset + 4 * token_scale_slot(t);
}

// Producer thread `row`'s copies into a load slot: its sources for the current unit (advanced
// by a stage's inputs per step) and destinations, worked out once per unit. A warp copies the
// FP4 codes of the 32 weight rows it converts, four lanes a row, so that a copy instruction reads
// eight whole 64-byte runs (one per row) rather than 16 bytes of 32 rows (which costs an L1
// wavefront per row and a 32-byte sector read for 16 bytes); the conversion waits for the warp's
// copies. Token and weight rows past the end keep whatever the slot held: their MMA rows and
// columns are never stored.
template <bool kFloatScales>
struct TileCopies {
  static constexpr int kCodeChunks = kTokens * 8 / kProducerThreads;  // token rows 16 apart
  static constexpr int kScaleStep = kFloatScales ? 16 : 4;            // scale bytes per stage

  const uint8_t* code_src;
  const uint8_t* weight_src;
  const uint8_t* scale_src;
  const float* token_scale_src;
  int64_t code_stride;  // 16 token rows
  uint32_t code_dst, scale_dst, token_scale_dst;
  int code_chunks;    // how many of this thread's token chunks exist
  int weight_groups;  // how many of this thread's four weight rows (8 apart) exist
  uint32_t weight_dst;
  bool token_scale_valid;

  __device__ TileCopies(const StreamParams& p, const ItemCursor& at, int row) {
    const int64_t first = at.first_token;
    const int here = at.here;
    const int t = row >> 3, c = row & 7;
    code_chunks = here > t ? (here - t + 15) / 16 : 0;
    code_src = static_cast<const uint8_t*>(p.x) + (first + t) * p.x_row_stride + 16 * c;
    code_stride = 16 * p.x_row_stride;
    code_dst = kCodesOffset + token_code_offset(t, c);  // + 16 rows: + 2048
    // Lane l copies 16-byte chunk l % 4 of rows (row & ~31) + l / 4 + 8i, i < 4 (p.rows % 8 == 0).
    const int first_row = (row & ~31) + (row & 31) / 4, chunk = row & 3;
    weight_groups = int(max(int64_t(0), min(int64_t(4), (p.rows - at.row0 - first_row + 7) / 8)));
    weight_src =
        p.w + at.expert * p.expert_w_bytes + (at.row0 + first_row) * p.w_row_bytes + 16 * chunk;
    weight_dst = kWeightsOffset + weight_chunk(first_row, chunk);  // + 8 rows: + 512
    scale_src = row_scale_codes<kFloatScales>(p, at, row);
    scale_dst = kWeightScalesOffset + row * kScaleStep;
    token_scale_valid = row < here;
    token_scale_src = p.x_scales + (first + min(row, here - 1)) * (p.cols / kStepInputs);
    token_scale_dst = token_scale_offset(row);
  }

  __device__ void issue(uint8_t* slot, int step, int64_t w_row_bytes) const {
    const uint32_t base = shared_address(slot);
    // Running pointers: an add per copy rather than a 64-bit multiply-add.
    const uint8_t* code = code_src + step * kStepInputs;
#pragma unroll
    for (int i = 0; i < kCodeChunks; ++i, code += code_stride) {
      if (i < code_chunks) cp_async_16(base + code_dst + i * 16 * kStepInputs, code);
    }
    const uint8_t* weight = weight_src + step * (kStepInputs / 2);
#pragma unroll
    for (int i = 0; i < 4; ++i, weight += 8 * w_row_bytes) {
      if (i < weight_groups) cp_async_16(base + weight_dst + i * 8 * 64, weight);
    }
    if constexpr (kFloatScales) {
      cp_async_16(base + scale_dst, scale_src + step * kScaleStep);
    } else {
      cp_async_4(base + scale_dst, scale_src + step * kScaleStep);
    }
    if (token_scale_valid) cp_async_4(base + token_scale_dst, token_scale_src + step);
  }
};

// Producer thread `row`: its row of a weight tile (128 e4m3 codes, 128-byte swizzle) from the FP4
// codes and scales in a load slot.
template <bool kFloatScales>
__device__ void convert_row(const uint8_t* slot, uint8_t* weight_tile, int row, bool folded,
                            uint32_t high) {
  const uint32_t codes = scale_codes<kFloatScales>(slot, row);
  const FoldedRowTables fold(high);
  uint8_t* tile_row = weight_tile + row * kStepInputs;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint2 table = folded ? fold(codes, j) : make_uint2(kUnscaledLow, kUnscaledHigh);
    const uint4 fp4 = *reinterpret_cast<const uint4*>(slot + kWeightsOffset + weight_chunk(row, j));
    const uint2 k0 = e2m1x8_to_e4m3(fp4.x, table), k1 = e2m1x8_to_e4m3(fp4.y, table);
    const uint2 k2 = e2m1x8_to_e4m3(fp4.z, table), k3 = e2m1x8_to_e4m3(fp4.w, table);
    *reinterpret_cast<uint4*>(tile_row + 16 * ((2 * j) ^ (row & 7))) =
        make_uint4(k0.x, k0.y, k1.x, k1.y);
    *reinterpret_cast<uint4*>(tile_row + 16 * ((2 * j + 1) ^ (row & 7))) =
        make_uint4(k2.x, k2.y, k3.x, k3.y);
  }
}

// Producer warpgroup `producer` takes the items producer, producer + kProducers, ...: copies
// each, and kLag of its items later converts it once this thread's copies have landed.
template <bool kFloatScales>
__device__ void produce(const StreamParams& p, const Units& units, const Ring& ring, int producer,
                        int row) {
  RingCursor<kLoadSlots> load(producer), convert_load(producer);
  RingCursor<kWeightTiles> convert_tile(producer);
  ItemCursor copy_at(p, units, producer), convert_at(p, units, producer);
  TileCopies<kFloatScales> copies(p, copy_at, row);
  // Copies of the next own item (an empty commit group past the end, so that the group count
  // stays uniform).
  const auto issue = [&] {
    if (!copy_at.done(units)) {
      load.wait_free(ring.load_free);
      copies.issue(ring.load_slot(load.slot), copy_at.step, p.w_row_bytes);
      load.advance(kProducers);
      const int old_sequence = copy_at.sequence;
      copy_at.advance(p, units, kProducers);
      if (copy_at.sequence != old_sequence && !copy_at.done(units)) {
        copies = TileCopies<kFloatScales>(p, copy_at, row);
      }
    }
    cp_async_commit();
  };
  for (int n = 0; n < kLag; ++n) issue();
  int scanned = -1;  // the unit (sequence) whose rows `high` and `folded` describe
  uint32_t high = 0;
  bool folded = false;
  while (!convert_at.done(units)) {
    if (convert_at.sequence != scanned) {  // a new unit: its rows' scales decide the encoding
      scanned = convert_at.sequence;
      bool foldable = true;
      high = scan_row_scales<kFloatScales>(row_scale_codes<kFloatScales>(p, convert_at, row),
                                           p.w_scale_cols, foldable);
      folded = producer == 0 ? named_barrier_and<1>(kProducerThreads, foldable)
                             : named_barrier_and<2>(kProducerThreads, foldable);
      // Both producer warpgroups reach the same answer; the one converting the unit's first item
      // tells the consumers (before its `converted`, which they wait for), once they are done
      // with the unit two before, which used the same place.
      if (convert_at.step == 0) {
        const int buffer = scanned & 1;
        if (scanned >= 2) mbarrier_wait(&ring.unit_done[buffer], uint32_t((scanned >> 1) - 1) & 1u);
        ring.row_scales[buffer * kRows + row] = folded ? __uint_as_float((high - 6u) << 23) : 1.0f;
        if (row == 0) ring.folded[buffer] = folded ? 1 : 0;
      }
    }
    // Convert before copying the next item: the conversion must not wait behind a slot that only
    // frees up once the consumers are past the stage this conversion is for.
    cp_async_wait<kLag - 1>();  // this thread's copies of it have landed,
    __syncwarp();               // and the warp's (its rows' codes)
    convert_tile.wait_free(ring.weight_free);
    convert_row<kFloatScales>(ring.load_slot(convert_load.slot),
                              ring.weight_tile(convert_tile.slot), row, folded, high);
    // The weight tile row and this thread's copied token codes are visible to wgmma; the consumers
    // read them once every producer thread has arrived.
    fence_proxy_async_shared();
    mbarrier_arrive(&ring.converted[convert_tile.slot]);
    convert_load.advance(kProducers);
    convert_tile.advance(kProducers);
    convert_at.advance(p, units, kProducers);
    issue();
  }
}

// Stores a consumer thread's sums of a finished tile (rows in groups of 8 that exist or not
// together: p.rows % 8 == 0) and zeroes them. acc[4c + e] is token token_a (e < 2) or token_a + 8,
// weight row 8c + 2q + (e & 1). bf16 outputs are gathered across the quad in two shuffle rounds
// so that each lane stores 16 bytes (8 rows of one token): 32 bytes a token per pair of lanes.
__device__ __forceinline__ void store_tile(const StreamParams& p, const ItemCursor& at,
                                           const float* row_scales, float (&acc)[64], int here,
                                           int token_a, int q) {
  const int64_t first = at.first_token;
  const int64_t rows = p.rows, row0 = at.row0;
  const bool odd = (q & 1) != 0, upper = (q & 2) != 0;
  const int token = odd ? token_a + 8 : token_a;  // the token this lane's bf16 stores belong to
  uint32_t half[16][2];  // bf16 rows [8c + 4·upper, +4) of `token`, after the first round
#pragma unroll
  for (int c = 0; c < 16; ++c) {
    const float2 scale = *reinterpret_cast<const float2*>(row_scales + 8 * c + 2 * q);
    const float2 a = make_float2(acc[4 * c] * scale.x, acc[4 * c + 1] * scale.y);
    const float2 b = make_float2(acc[4 * c + 2] * scale.x, acc[4 * c + 3] * scale.y);
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[4 * c + e] = 0.0f;
    if (p.y_f32 && row0 + 8 * c < rows) {
      float* y = p.y_f32 + first * rows + row0 + 8 * c + 2 * q;
      if (token_a < here) *reinterpret_cast<float2*>(y + token_a * rows) = a;
      if (token_a + 8 < here) *reinterpret_cast<float2*>(y + (token_a + 8) * rows) = b;
    }
    const uint32_t word_a = pack_bf16x2(a.x, a.y), word_b = pack_bf16x2(b.x, b.y);
    // Even lanes keep token_a's rows and take their odd neighbour's; odd lanes the reverse.
    const uint32_t other = __shfl_xor_sync(0xffffffffu, odd ? word_a : word_b, 1);
    half[c][0] = odd ? other : word_a;
    half[c][1] = odd ? word_b : other;
  }
  if (!p.y_bf16) return;  // uniform: every lane takes part in the shuffles below
#pragma unroll
  for (int c = 0; c < 16; c += 2) {
    // Lanes q and q ^ 2 hold the two halves of groups c and c + 1: the lower lane gathers group
    // c, the upper one group c + 1.
    const uint32_t send0 = upper ? half[c][0] : half[c + 1][0];
    const uint32_t send1 = upper ? half[c][1] : half[c + 1][1];
    const uint32_t got0 = __shfl_xor_sync(0xffffffffu, send0, 2);
    const uint32_t got1 = __shfl_xor_sync(0xffffffffu, send1, 2);
    const int group = upper ? c + 1 : c;
    const uint4 out = upper ? make_uint4(got0, got1, half[c + 1][0], half[c + 1][1])
                            : make_uint4(half[c][0], half[c][1], got0, got1);
    if (token < here && row0 + 8 * group < rows) {
      *reinterpret_cast<uint4*>(p.y_bf16 + (first + token) * rows + row0 + 8 * group) = out;
    }
  }
}

// Consumer warpgroup w takes tokens [64w, 64w + 64) of each tile as the MMA's M against all
// 128 weight rows as its N, so that a thread's sums share two activation scales (its two
// token rows) and a warpgroup whose tokens are all past the tile's end skips its MMAs.
template <bool kFloatScales>
__device__ void consume(const StreamParams& p, const Units& units, const Ring& ring, int tid) {
  const int warpgroup = tid >> 7, lane = tid & 31, q = lane & 3;
  const int token_a = 64 * warpgroup + 16 * ((tid >> 5) & 3) + lane / 4, token_b = token_a + 8;
  const uint32_t scale_a_at = token_scale_offset(token_a), scale_b_at = token_scale_offset(token_b);
  const uint64_t token_descriptor =
      smem_descriptor(ring.smem + kCodesOffset + warpgroup * 64 * kStepInputs, 16, 1024);
  const uint64_t weight_descriptor = smem_descriptor(ring.smem + kWeightTilesOffset, 16, 1024);
  float acc[64], d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = d[i] = 0.0f;
  bool folded = false;
  RingCursor<kLoadSlots> load(0);
  RingCursor<kWeightTiles> tile_ring(0);
  for (ItemCursor at(p, units, 0); !at.done(units); at.advance(p, units, 1)) {
    const uint8_t* slot = ring.load_slot(load.slot);
    const int here = at.here;
    mbarrier_wait(&ring.converted[tile_ring.slot], tile_ring.pass & 1u);
    // Set before the unit's first `converted`.
    if (at.step == 0) folded = ring.folded[at.sequence & 1] != 0;
    // Descriptors advance in 16-byte units of their start address: 32 bytes per block.
    const uint64_t token_offset = uint64_t(load.slot * kLoadSlotBytes) >> 4;
    const uint64_t weight_offset = uint64_t(tile_ring.slot * kWeightTileBytes) >> 4;
    if (here > 64 * warpgroup) {
      const float scale_a = *reinterpret_cast<const float*>(slot + scale_a_at);
      const float scale_b = *reinterpret_cast<const float*>(slot + scale_b_at);
      if (folded) {
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          wgmma_m64n128k32_e4m3_ss(d, token_descriptor + token_offset + 2 * j,
                                   weight_descriptor + weight_offset + 2 * j, j > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_operands(d);
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = fmaf(d[i], (i & 2) ? scale_b : scale_a, acc[i]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          wgmma_fence();
          wgmma_m64n128k32_e4m3_ss(d, token_descriptor + token_offset + 2 * j,
                                   weight_descriptor + weight_offset + 2 * j, false);
          wgmma_commit();
          wgmma_wait<0>();
          wgmma_fence_operands(d);
#pragma unroll
          for (int i = 0; i < 64; ++i) {
            const int row = 8 * (i >> 2) + 2 * q + (i & 1);
            const float weight = weight_scale<kFloatScales>(slot, row, j) * kE2m1AsE4m3Unfold;
            acc[i] = fmaf(d[i], ((i & 2) ? scale_b : scale_a) * weight, acc[i]);
          }
        }
      }
    }
    __syncwarp();
    if (lane == 0) {
      mbarrier_arrive(&ring.load_free[load.slot]);
      mbarrier_arrive(&ring.weight_free[tile_ring.slot]);
    }
    load.advance(1);
    tile_ring.advance(1);

    if (at.step == units.steps - 1) {  // the unit's last stage
      const int buffer = at.sequence & 1;
      store_tile(p, at, ring.row_scales + buffer * kRows, acc, here, token_a, q);
      __syncwarp();  // the unit's row scales may be rewritten
      if (lane == 0) mbarrier_arrive(&ring.unit_done[buffer]);
    }
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
  // The block scan's scratch is the first load slot (not yet in use).
  static_assert(sizeof(TokenTileScan<kThreads>::TempStorage) <= kLoadSlotBytes);
  list_token_tiles<kThreads, kMaxExperts>(p, n_experts, tile_starts, smem);
  auto* barriers = reinterpret_cast<uint64_t*>(smem + kBarriersOffset);
  const Ring ring{smem,
                  barriers,
                  barriers + kWeightTiles,
                  barriers + kWeightTiles + kLoadSlots,
                  barriers + kWeightTiles + kLoadSlots + kWeightTiles,
                  reinterpret_cast<float*>(smem + kRowScalesOffset),
                  reinterpret_cast<int*>(smem + kFoldedOffset)};
  if (tid == 0) {
    for (int s = 0; s < kWeightTiles; ++s) {
      mbarrier_init(&ring.converted[s], kProducerThreads);
      mbarrier_init(&ring.weight_free[s], kConsumerThreads / 32);
    }
    for (int s = 0; s < kLoadSlots; ++s) mbarrier_init(&ring.load_free[s], kConsumerThreads / 32);
    for (int s = 0; s < 2; ++s) mbarrier_init(&ring.unit_done[s], kConsumerThreads / 32);
    fence_barrier_init();
  }
  __syncthreads();
  const int row_blocks = int((p.rows + kRows - 1) / kRows);
  const Units units{row_blocks, int(p.cols / kStepInputs), n_experts, tile_starts,
                    tile_starts[n_experts] * row_blocks};
  if (tid >= kConsumerThreads) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    produce<kFloatScales>(p, units, ring, (tid - kConsumerThreads) / kProducerThreads,
                          (tid - kConsumerThreads) % kProducerThreads);
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
