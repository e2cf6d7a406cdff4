// Routed MXFP4 experts at prefill sizes on sm_90 FP8 warpgroup MMAs (fp4_expert_gemm.h).
//
// A CTA takes one expert and 128 of its weight rows and walks all of the expert's tokens in
// tiles of 128 (two wgmma M of 64), 128 inputs (one activation scale block) per stage. Warp-
// specialised, four warpgroups:
//   - two producer warpgroups (one thread per weight row each) take alternate stages: copy a
//     stage's token codes (in the 128-byte-swizzled K-major layout wgmma reads), FP4 codes,
//     weight and activation scales into a slot of the load ring with cp.async, and kLag of
//     their stages later convert its FP4 codes into an e4m3 weight tile (fp4_e4m3_conversion.cuh)
//     of the weight-tile ring, then signal `converted`;
//   - two consumer warpgroups (64 tokens each, against all 128 rows) run the MMAs with both
//     operands in shared memory, promote the results, and free the load slot and the weight tile.
// Two encodings, chosen per CTA from its rows' weight scales:
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
#include "cuda/kernels/gemm/fp4_e4m3_conversion.cuh"
#include "cuda/kernels/gemm/fp4_expert_gemm.h"
#include "cuda/kernels/gemm/wgmma_gemm_stage.cuh"
#include "cuda/runtime/check.h"
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
// After the rings: the barriers, then each row's final scale.
constexpr int kBarriersOffset = kWeightTilesOffset + kWeightTiles * kWeightTileBytes;
constexpr int kBarriers = kWeightTiles + kLoadSlots + kWeightTiles;
constexpr int kRowScalesOffset = kBarriersOffset + kBarriers * 8;
constexpr int kFoldedOffset = kRowScalesOffset + kRows * 4;
constexpr int kSharedBytes = kFoldedOffset + 16 + 1024;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

constexpr int kConsumerRegisters = 168, kProducerRegisters = 88;  // setmaxnreg, per role

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
  float* row_scales;      // [kRows]: what each row's sums are multiplied by at the end
  int* folded;            // whether the weight tiles carry the block scales (scale-folded encoding)
  __device__ uint8_t* load_slot(int slot) const { return smem + slot * kLoadSlotBytes; }
  __device__ uint8_t* weight_tile(int slot) const {
    return smem + kWeightTilesOffset + slot * kWeightTileBytes;
  }
};

// The CTA's work: `count` tokens of one expert from `first_token`, in tiles of kTokens, each
// tile `steps` stages of kStepInputs inputs; the producers and consumers walk them as items.
struct Work {
  const StreamParams& p;
  const uint8_t* w;       // the expert's FP4 codes
  const uint8_t* scales;  // the expert's weight scales
  int64_t row0, first_token, count;
  int steps;
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

// Producer thread `row`'s copies into a load slot: its sources for the current token tile
// (advanced by a stage's inputs per step) and destinations, worked out once per tile. A thread
// copies the FP4 codes and scales of its own weight row, which it converts, so that the
// conversion waits for its own copies only. Token and weight rows past the end keep whatever
// the slot held: their MMA rows and columns are never stored.
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
  int code_chunks;  // how many of this thread's token chunks exist
  bool weight_row_valid, token_scale_valid;
  int row;

  __device__ TileCopies(const Work& k, int64_t tile, int row) {
    const int64_t first = k.first_token + tile * kTokens;
    const int here = int(min(k.count - tile * kTokens, int64_t(kTokens)));
    const int t = row >> 3, c = row & 7;
    code_chunks = here > t ? (here - t + 15) / 16 : 0;
    code_src = static_cast<const uint8_t*>(k.p.x) + (first + t) * k.p.x_row_stride + 16 * c;
    code_stride = 16 * k.p.x_row_stride;
    code_dst = kCodesOffset + token_code_offset(t, c);  // + 16 rows: + 2048
    weight_row_valid = k.row0 + row < k.p.rows;
    weight_src = k.w + (k.row0 + row) * k.p.w_row_bytes;
    this->row = row;
    scale_src = k.scales + min(k.row0 + row, k.p.rows - 1) * k.p.w_scale_cols * (kScaleStep / 4);
    scale_dst = kWeightScalesOffset + row * kScaleStep;
    token_scale_valid = row < here;
    token_scale_src = k.p.x_scales + (first + min(row, here - 1)) * (k.p.cols / kStepInputs);
    token_scale_dst = kTokenScalesOffset + 4 * token_scale_slot(row);
  }

  __device__ void issue(uint8_t* slot, int step) const {
    const uint32_t base = shared_address(slot);
#pragma unroll
    for (int i = 0; i < kCodeChunks; ++i) {
      if (i < code_chunks) {
        cp_async_16(base + code_dst + i * 16 * kStepInputs,
                    code_src + i * code_stride + step * kStepInputs);
      }
    }
    if (weight_row_valid) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        cp_async_16(base + kWeightsOffset + weight_chunk(row, c),
                    weight_src + step * (kStepInputs / 2) + 16 * c);
      }
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
__device__ void produce(const Work& k, const Ring& ring, int64_t items, int producer, int row) {
  const int64_t own = (items - producer + kProducers - 1) / kProducers;
  RingCursor<kLoadSlots> load(producer), convert_load(producer);
  RingCursor<kWeightTiles> convert_tile(producer);
  int64_t tile = 0;  // of the next item to copy
  int step = producer;
  for (; step >= k.steps; step -= k.steps) ++tile;
  TileCopies<kFloatScales> copies(k, tile, row);
  // Copies of own item n, n < own (an empty commit group past the end, so that the group
  // count stays uniform).
  const auto issue = [&](int64_t n) {
    if (n < own) {
      load.wait_free(ring.load_free);
      copies.issue(ring.load_slot(load.slot), step);
      load.advance(kProducers);
      const int64_t old_tile = tile;
      for (step += kProducers; step >= k.steps; step -= k.steps) ++tile;
      if (tile != old_tile && n + 1 < own) copies = TileCopies<kFloatScales>(k, tile, row);
    }
    cp_async_commit();
  };
  // The first copies go out before the scan of the rows' scales, whose loads then overlap them.
  for (int64_t n = 0; n < kLag; ++n) issue(n);
  bool foldable = true;
  const uint32_t high = scan_row_scales<kFloatScales>(
      k.scales + min(k.row0 + row, k.p.rows - 1) * k.p.w_scale_cols * (kFloatScales ? 4 : 1),
      k.p.w_scale_cols, foldable);
  // Both producer warpgroups reach the same answer; the first tells the consumers (before its
  // first `converted`, which they wait for).
  const bool folded = producer == 0 ? named_barrier_and<1>(kProducerThreads, foldable)
                                    : named_barrier_and<2>(kProducerThreads, foldable);
  if (producer == 0) {
    ring.row_scales[row] = folded ? __uint_as_float((high - 6u) << 23) : 1.0f;
    if (row == 0) *ring.folded = folded ? 1 : 0;
  }
  for (int64_t n = kLag; n < own + kLag; ++n) {
    // Convert own item n − kLag first: the conversion must not wait behind a slot that only
    // frees up once the consumers are past the stage this conversion is for.
    cp_async_wait<kLag - 1>();  // this thread's copies of it (its row's codes) have landed
    convert_tile.wait_free(ring.weight_free);
    convert_row<kFloatScales>(ring.load_slot(convert_load.slot),
                              ring.weight_tile(convert_tile.slot), row, folded, high);
    // The weight tile row and this thread's copied token codes are visible to wgmma; the consumers
    // read them once every producer thread has arrived.
    fence_proxy_async_shared();
    mbarrier_arrive(&ring.converted[convert_tile.slot]);
    convert_load.advance(kProducers);
    convert_tile.advance(kProducers);
    issue(n);
  }
}

// Token t's activation scale in a load slot.
__device__ __forceinline__ float token_scale(const uint8_t* slot, int t) {
  return reinterpret_cast<const float*>(slot + kTokenScalesOffset)[token_scale_slot(t)];
}

// Stores a consumer thread's sums of a finished tile (rows in groups of 8 that exist or not
// together: p.rows % 8 == 0) and zeroes them. acc[4c + e] is token token_a (e < 2) or token_a + 8,
// weight row 8c + 2q + (e & 1). bf16 outputs are gathered across the quad in two shuffle rounds
// so that each lane stores 16 bytes (8 rows of one token): 32 bytes a token per pair of lanes.
__device__ __forceinline__ void store_tile(const Work& k, const Ring& ring, float (&acc)[64],
                                           int64_t tile, int here, int token_a, int q) {
  const int64_t first = k.first_token + tile * kTokens;
  const int64_t rows = k.p.rows;
  const bool odd = (q & 1) != 0, upper = (q & 2) != 0;
  const int token = odd ? token_a + 8 : token_a;  // the token this lane's bf16 stores belong to
  uint32_t half[16][2];  // bf16 rows [8c + 4·upper, +4) of `token`, after the first round
#pragma unroll
  for (int c = 0; c < 16; ++c) {
    const float2 scale = *reinterpret_cast<const float2*>(ring.row_scales + 8 * c + 2 * q);
    const float2 a = make_float2(acc[4 * c] * scale.x, acc[4 * c + 1] * scale.y);
    const float2 b = make_float2(acc[4 * c + 2] * scale.x, acc[4 * c + 3] * scale.y);
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[4 * c + e] = 0.0f;
    const bool row_ok = k.row0 + 8 * c < rows;
    if (k.p.y_f32 && row_ok) {
      const int64_t at = first * rows + k.row0 + 8 * c + 2 * q;
      if (token_a < here) *reinterpret_cast<float2*>(k.p.y_f32 + at + token_a * rows) = a;
      if (token_a + 8 < here) *reinterpret_cast<float2*>(k.p.y_f32 + at + (token_a + 8) * rows) = b;
    }
    const uint32_t word_a = pack_bf16x2(a.x, a.y), word_b = pack_bf16x2(b.x, b.y);
    // Even lanes keep token_a's rows and take their odd neighbour's; odd lanes the reverse.
    const uint32_t other = __shfl_xor_sync(0xffffffffu, odd ? word_a : word_b, 1);
    half[c][0] = odd ? other : word_a;
    half[c][1] = odd ? word_b : other;
  }
  if (!k.p.y_bf16) return;  // uniform: every lane takes part in the shuffles below
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
    if (token < here && k.row0 + 8 * group < rows) {
      *reinterpret_cast<uint4*>(k.p.y_bf16 + (first + token) * rows + k.row0 + 8 * group) = out;
    }
  }
}

// Consumer warpgroup w takes tokens [64w, 64w + 64) of each tile as the MMA's M against all
// 128 weight rows as its N, so that a thread's sums share two activation scales (its two
// token rows) and a warpgroup whose tokens are all past the tile's end skips its MMAs.
template <bool kFloatScales>
__device__ void consume(const Work& k, const Ring& ring, int64_t items, int tid) {
  const int warpgroup = tid >> 7, lane = tid & 31, q = lane & 3;
  const int token_a = 64 * warpgroup + 16 * ((tid >> 5) & 3) + lane / 4, token_b = token_a + 8;
  const uint64_t token_descriptor =
      smem_descriptor(ring.smem + kCodesOffset + warpgroup * 64 * kStepInputs, 16, 1024);
  const uint64_t weight_descriptor = smem_descriptor(ring.smem + kWeightTilesOffset, 16, 1024);
  float acc[64], d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = d[i] = 0.0f;
  int64_t tile = 0;
  int step = 0;
  int here = int(min(k.count, int64_t(kTokens)));  // tokens in the current tile
  bool folded = false;
  RingCursor<kLoadSlots> load(0);
  RingCursor<kWeightTiles> tile_ring(0);
  for (int64_t item = 0; item < items; ++item) {
    const uint8_t* slot = ring.load_slot(load.slot);
    mbarrier_wait(&ring.converted[tile_ring.slot], tile_ring.pass & 1u);
    if (item == 0) folded = *ring.folded != 0;  // set before the first `converted`
    // Descriptors advance in 16-byte units of their start address: 32 bytes per block.
    const uint64_t token_offset = uint64_t(load.slot * kLoadSlotBytes) >> 4;
    const uint64_t weight_offset = uint64_t(tile_ring.slot * kWeightTileBytes) >> 4;
    if (here > 64 * warpgroup && folded) {
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wgmma_m64n128k32_e4m3_ss(d, token_descriptor + token_offset + 2 * j,
                                 weight_descriptor + weight_offset + 2 * j, j > 0);
      }
      wgmma_commit();
      const float scale_a = token_scale(slot, token_a), scale_b = token_scale(slot, token_b);
      wgmma_wait<0>();
      wgmma_fence_operands(d);
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[i] = fmaf(d[i], (i & 2) ? scale_b : scale_a, acc[i]);
    } else if (here > 64 * warpgroup) {
      const float scale_a = token_scale(slot, token_a), scale_b = token_scale(slot, token_b);
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
    __syncwarp();
    if (lane == 0) {
      mbarrier_arrive(&ring.load_free[load.slot]);
      mbarrier_arrive(&ring.weight_free[tile_ring.slot]);
    }
    load.advance(1);
    tile_ring.advance(1);

    if (++step == k.steps) {  // the tile's last stage: store, start over
      store_tile(k, ring, acc, tile, here, token_a, q);
      step = 0;
      ++tile;
      here = int(min(k.count - tile * kTokens, int64_t(kTokens)));
    }
  }
}

#endif  // __CUDA_ARCH__ >= 900

// CTA (x, y): rows [128x, 128x + 128) of expert y, all of its tokens.
template <bool kFloatScales>
__global__ void __launch_bounds__(kThreads, 1)
    fp4_expert_wgmma_kernel(const __grid_constant__ StreamParams p) {
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_unaligned[];
  uint8_t* smem = smem_unaligned + ((1024u - (shared_address(smem_unaligned) & 1023u)) & 1023u);
  const int tid = int(threadIdx.x);
  const int64_t e = blockIdx.y, row0 = int64_t(blockIdx.x) * kRows;
  const int64_t first_token = p.expert_offsets[e];
  const int64_t count = p.expert_offsets[e + 1] - first_token;
  if (count == 0) return;  // the whole CTA
  const auto* scales = static_cast<const uint8_t*>(p.w_scales) + e * p.expert_scale_bytes;
  const Work work{p,     p.w + e * p.expert_w_bytes, scales, row0, first_token,
                  count, int(p.cols / kStepInputs)};
  auto* barriers = reinterpret_cast<uint64_t*>(smem + kBarriersOffset);
  const Ring ring{smem,
                  barriers,
                  barriers + kWeightTiles,
                  barriers + kWeightTiles + kLoadSlots,
                  reinterpret_cast<float*>(smem + kRowScalesOffset),
                  reinterpret_cast<int*>(smem + kFoldedOffset)};
  const int64_t items = (count + kTokens - 1) / kTokens * work.steps;

  const bool producer = tid >= kConsumerThreads;
  if (tid == 0) {
    for (int s = 0; s < kWeightTiles; ++s) {
      mbarrier_init(&ring.converted[s], kProducerThreads);
      mbarrier_init(&ring.weight_free[s], kConsumerThreads / 32);
    }
    for (int s = 0; s < kLoadSlots; ++s) mbarrier_init(&ring.load_free[s], kConsumerThreads / 32);
    fence_barrier_init();
  }
  __syncthreads();
  if (producer) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    produce<kFloatScales>(work, ring, items, (tid - kConsumerThreads) / kProducerThreads,
                          (tid - kConsumerThreads) % kProducerThreads);
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
    consume<kFloatScales>(work, ring, items, tid);
  }
#else
  (void)p;
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
  const dim3 grid(unsigned((p.rows + kRows - 1) / kRows), unsigned(n_experts));
  const auto launch = [&](auto float_scales) {
    const auto kernel = fp4_expert_wgmma_kernel<decltype(float_scales)::value>;
    static const bool configured = [&] {
      DSV4_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
      return true;
    }();
    (void)configured;
    launch_dependent(kernel, grid, kThreads, kSharedBytes, stream, p);
  };
  if (p.w_scale_storage == ScaleStorage::kF32) {
    launch(std::true_type{});
  } else {
    launch(std::false_type{});
  }
}

}  // namespace dsv4::cuda::gemm_detail
