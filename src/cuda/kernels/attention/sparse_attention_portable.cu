// Sparse attention with sink, portable kernel (sm_80 and up; the fallback where the sm_90a
// kernel does not apply): one CTA per (query token, group of 64 heads), 16 warps. The token's
// list is gathered 64 entries at a time (one block of the online softmax, see
// cpu::attend_head), dequantized to bf16 in shared memory and shared by all heads; Q·Kᵀ and
// P·V run on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators).
//
// Numerics follow cpu::attend_head up to fp32 summation order: per block the running maximum
// grows, O and the row sums are rescaled by exp(m_old − m_new), P = bf16(exp(s − m_new)). The
// stored values are exactly representable in bf16, so the tensor-core products are exact. It
// is latency-bound (row gathers through registers, one CTA per token).
#include <mutex>
#include <type_traits>

#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/attention/sparse_attention_launch.h"
#include "cuda/kernels/attention/sparse_attention_rows.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/kernels/common/mma_sm80.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kHeads = 64;  // query heads per CTA
constexpr int kRows = 64;   // KV rows per tile
constexpr int kMaxDim = 512;
constexpr int kPad = 8;  // bf16 padding per shared row: 16 bytes, conflict-free ldmatrix
constexpr int kPStride = kRows + kPad;
constexpr int kMaxDimTiles = kMaxDim / 8 / kWarps;  // P·V column tiles of 8 per warp

constexpr int kLoadsPerThread = kRows * (kMaxDim / 8) / kThreads;  // 8

size_t shared_bytes(int dim) {
  const size_t ld = size_t(dim + kPad);
  return sizeof(uint16_t) * (kHeads * ld + kRows * ld + kHeads * kPStride) +
         kRows * sizeof(const uint8_t*) + 7 * kHeads * sizeof(float);
}

__global__ void __launch_bounds__(kThreads, 1)
    sparse_attention_kernel(const SparseAttentionArgs a, int32_t row_bytes) {
  wait_for_previous_kernel();
  extern __shared__ __align__(16) uint8_t smem[];
  const int dim = a.head_dim, ld = dim + kPad;
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);                           // [kHeads][ld]
  uint16_t* kv_s = q_s + kHeads * ld;                                          // [kRows][ld]
  uint16_t* p_s = kv_s + kRows * ld;                                           // [kHeads][kPStride]
  auto** rows_s = reinterpret_cast<const uint8_t**>(p_s + kHeads * kPStride);  // [kRows]
  float* red_s = reinterpret_cast<float*>(rows_s + kRows);                     // [4][kHeads]
  float* max_s = red_s + 4 * kHeads;                                           // running maxima
  float* rescale_s = max_s + kHeads;  // this block's exp(m_old - m_new)
  float* den_s = rescale_s + kHeads;

  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const AttentionToken k = attention_token(a, int32_t(blockIdx.x));
  const int tiles = (k.n_rows + kRows - 1) / kRows;

  const int head0 = int(blockIdx.y) * kHeads;
  const int heads_here = min(kHeads, a.heads - head0);
  const int m_tiles = (heads_here + 15) / 16;
  const int units = dim / 8;  // 8-value column units (16 bytes of bf16)
  const int nope = dim - a.rope_dim, nope_units = nope / 8;
  const int scale_offset = nope + 2 * a.rope_dim;

  for (int i = tid; i < kHeads * units; i += kThreads) {
    const int h = i / units, u = i % units;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (h < heads_here) {
      v = *reinterpret_cast<const uint4*>(a.q + (int64_t(k.t) * a.heads + head0 + h) * dim + u * 8);
    }
    *reinterpret_cast<uint4*>(q_s + h * ld + u * 8) = v;
  }

  if (tid < kHeads) max_s[tid] = -INFINITY;
  __syncthreads();

  // Gathers and dequantizes entries [64·tile, 64·tile + 64); ends with a barrier. Every thread
  // issues kLoadBatch loads before converting them (O holds most registers).
  constexpr int kLoadBatch = 2;
  const auto load_tile = [&](int tile) {
    if (tid < kRows) rows_s[tid] = attention_row(a, k, tile * kRows + tid, row_bytes);
    __syncthreads();
    const int total = kRows * units;
#pragma unroll 1
    for (int round = 0; round < kLoadsPerThread / kLoadBatch; ++round) {
      uint2 raw[kLoadBatch][2];
      uint8_t scale_code[kLoadBatch];
#pragma unroll
      for (int it = 0; it < kLoadBatch; ++it) {
        const int i = tid + (round * kLoadBatch + it) * kThreads;
        raw[it][0] = raw[it][1] = make_uint2(0u, 0u);
        scale_code[it] = 127;
        if (i < total) {
          const int r = i / units, u = i % units;
          const uint8_t* src = rows_s[r];
          if (src && u < nope_units) {
            raw[it][0] = *reinterpret_cast<const uint2*>(src + u * 8);
            scale_code[it] = src[scale_offset + u / 8];
          } else if (src) {
            const auto* rope = reinterpret_cast<const uint2*>(src + nope + (u - nope_units) * 16);
            raw[it][0] = rope[0];
            raw[it][1] = rope[1];
          }
        }
      }
#pragma unroll
      for (int it = 0; it < kLoadBatch; ++it) {
        const int i = tid + (round * kLoadBatch + it) * kThreads;
        if (i < total) {
          const int r = i / units, u = i % units;
          uint4 v = make_uint4(raw[it][0].x, raw[it][0].y, raw[it][1].x, raw[it][1].y);
          if (u < nope_units) v = dequant_e4m3x8(raw[it][0], scale_code[it]);
          *reinterpret_cast<uint4*>(kv_s + r * ld + u * 8) = v;
        }
      }
    }
    __syncthreads();
  };

  // Q·Kᵀ: warp (mt, pair of 8-row column tiles) -> s[n][e]; element e of column tile n is head
  // 16·mt + lane/4 (+ 8 for e >= 2), row 8·(nt0 + n) + 2·(lane % 4) + (e & 1) of the tile.
  const int mt = warp >> 2, nt0 = (warp & 3) * 2;
  const bool qk_active = mt < m_tiles;
  const uint16_t* a_ptr = q_s + (mt * 16 + (lane & 15)) * ld + (lane >> 4) * 8;
  const uint16_t* b_ptr =
      kv_s + (nt0 * 8 + (lane >> 4) * 8 + (lane & 7)) * ld + ((lane >> 3) & 1) * 8;
  const auto tile_scores = [&](float(&s)[2][4]) {
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
    }
    if (!qk_active) return;
    for (int kk = 0; kk < dim; kk += 16) {
      uint32_t af[4], bf[4];
      ldmatrix_x4(af, a_ptr + kk);
      ldmatrix_x4(bf, b_ptr + kk);
      mma_bf16_16816(s[0], af, bf[0], bf[1]);
      mma_bf16_16816(s[1], af, bf[2], bf[3]);
    }
  };

  // Warp w owns the output column tiles w, w + 16, ... (8 values each) of all heads.
  float sum[2] = {0.0f, 0.0f};
  float o[4][kMaxDimTiles][4];
#pragma unroll
  for (int m = 0; m < 4; ++m) {
#pragma unroll
    for (int i = 0; i < kMaxDimTiles; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o[m][i][e] = 0.0f;
    }
  }
  const int h_lo = mt * 16 + (lane >> 2);
  for (int tile = 0; tile < tiles; ++tile) {
    load_tile(tile);
    float s[2][4];
    tile_scores(s);
    // Scaled scores (masked entries -inf) and this warp's share of the block's maxima.
    float bmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = (nt0 + n) * 8 + (lane & 3) * 2 + (e & 1);
        s[n][e] = rows_s[r] ? __fmul_rn(s[n][e], a.scale) : -INFINITY;
        bmax[e >> 1] = fmaxf(bmax[e >> 1], s[n][e]);
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      bmax[i] = fmaxf(bmax[i], __shfl_xor_sync(0xffffffffu, bmax[i], 1));
      bmax[i] = fmaxf(bmax[i], __shfl_xor_sync(0xffffffffu, bmax[i], 2));
    }
    if (qk_active && (lane & 3) == 0) {
      red_s[(warp & 3) * kHeads + h_lo] = bmax[0];
      red_s[(warp & 3) * kHeads + h_lo + 8] = bmax[1];
    }
    __syncthreads();
    if (tid < kHeads) {
      const float old = max_s[tid];
      const float grown = fmaxf(fmaxf(old, fmaxf(red_s[tid], red_s[kHeads + tid])),
                                fmaxf(red_s[2 * kHeads + tid], red_s[3 * kHeads + tid]));
      // A block of masked entries (maximum still -inf) changes nothing.
      rescale_s[tid] = grown == -INFINITY ? 1.0f : expf(old - grown);
      max_s[tid] = grown;
    }
    __syncthreads();
    // P = bf16(exp(s - m)) into shared memory; the row sums and O rescaled first.
    if (qk_active) {
      const float m_lo = max_s[h_lo], m_hi = max_s[h_lo + 8];
      sum[0] *= rescale_s[h_lo];
      sum[1] *= rescale_s[h_lo + 8];
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        const int r = (nt0 + n) * 8 + (lane & 3) * 2;
        // expf (2 ulp) rather than the correctly rounded exp_rn: the scores already differ
        // from the CPU's in the last bits (summation order), so exact rounding buys nothing.
        const float e0 = rows_s[r] ? expf(s[n][0] - m_lo) : 0.0f;
        const float e1 = rows_s[r + 1] ? expf(s[n][1] - m_lo) : 0.0f;
        const float e2 = rows_s[r] ? expf(s[n][2] - m_hi) : 0.0f;
        const float e3 = rows_s[r + 1] ? expf(s[n][3] - m_hi) : 0.0f;
        sum[0] += e0 + e1;
        sum[1] += e2 + e3;
        *reinterpret_cast<uint32_t*>(p_s + h_lo * kPStride + r) = bf16x2_bits(e0, e1);
        *reinterpret_cast<uint32_t*>(p_s + (h_lo + 8) * kPStride + r) = bf16x2_bits(e2, e3);
      }
    }
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const float f_lo = rescale_s[m * 16 + (lane >> 2)],
                  f_hi = rescale_s[m * 16 + (lane >> 2) + 8];
#pragma unroll
      for (int i = 0; i < kMaxDimTiles; ++i) {
        o[m][i][0] *= f_lo;
        o[m][i][1] *= f_lo;
        o[m][i][2] *= f_hi;
        o[m][i][3] *= f_hi;
      }
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kRows / 16; ++ks) {
      uint32_t af[4][4];
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        if (m < m_tiles) {
          ldmatrix_x4(af[m], p_s + (m * 16 + (lane & 15)) * kPStride + ks * 16 + (lane >> 4) * 8);
        }
      }
#pragma unroll
      for (int i = 0; i < kMaxDimTiles; ++i) {
        const int nt = warp + kWarps * i;
        if (nt < units) {
          uint32_t bf[2];
          ldmatrix_x2_trans(bf, kv_s + (ks * 16 + (lane & 15)) * ld + nt * 8);
#pragma unroll
          for (int m = 0; m < 4; ++m) {
            if (m < m_tiles) mma_bf16_16816(o[m][i], af[m], bf[0], bf[1]);
          }
        }
      }
    }
    __syncthreads();
  }

  // Denominators: Σ exp(s - M) over the rows + exp(sink - M).
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 1);
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 2);
  }
  if (qk_active && (lane & 3) == 0) {
    red_s[(warp & 3) * kHeads + mt * 16 + (lane >> 2)] = sum[0];
    red_s[(warp & 3) * kHeads + mt * 16 + (lane >> 2) + 8] = sum[1];
  }
  __syncthreads();
  if (tid < heads_here) {
    const float rows =
        (red_s[tid] + red_s[kHeads + tid]) + (red_s[2 * kHeads + tid] + red_s[3 * kHeads + tid]);
    den_s[tid] = rows + exp_rn(a.sink[head0 + tid] - max_s[tid]);
  }
  __syncthreads();

#pragma unroll
  for (int m = 0; m < 4; ++m) {
    if (m >= m_tiles) continue;
#pragma unroll
    for (int i = 0; i < kMaxDimTiles; ++i) {
      const int nt = warp + kWarps * i;
      if (nt >= units) continue;
      const int h = m * 16 + (lane >> 2), col = nt * 8 + (lane & 3) * 2;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int hh = h + 8 * half;
        if (hh >= heads_here) continue;
        const float den = den_s[hh];
        const uint32_t bits =
            bf16x2_bits(__fdiv_rn(o[m][i][2 * half], den), __fdiv_rn(o[m][i][2 * half + 1], den));
        *reinterpret_cast<uint32_t*>(a.out + (int64_t(k.t) * a.heads + head0 + hh) * dim + col) =
            bits;
      }
    }
  }
}

}  // namespace

void launch_sparse_attention_portable(const SparseAttentionArgs& a, int32_t row_bytes,
                                      cudaStream_t stream) {
  static std::once_flag configured;
  std::call_once(configured, [] {
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(sparse_attention_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(shared_bytes(kMaxDim))));
  });
  const dim3 grid(unsigned(a.batch.tokens), unsigned((a.heads + kHeads - 1) / kHeads));
  launch_dependent(sparse_attention_kernel, grid, kThreads, shared_bytes(a.head_dim), stream, a,
                   row_bytes);
}

}  // namespace dsv4::cuda
