// Dense linears on sm_90 warpgroup MMAs (internal to the gemm domain; scaled_gemm() and
// bf16_gemm() pick them): FP8 weights with FP8 activations (the block-scaled product of
// scaled_gemm.h, with the FP8 tensor cores' accumulation inside each 128-input block, promoted
// to fp32 per block as DeepSeek's reference GEMM does) and bf16 weights with bf16 activations
// (exact products, fp32 accumulation). Every token count runs here, so that a token's output
// does not depend on the batch it is in. Only where sm90_kernels_available() (device.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda::gemm_detail {

struct StreamParams;  // weight_stream_formats.cuh

// The most partial sums a launch splits into on this device: scratch of this many floats lets
// every shape split as far as it wants.
int64_t linear_wgmma_split_floats();

// p as for the weight-streaming kernel, format kFp8 (float block scales, FP8 activations) or
// kBF16 (bf16 activations), inputs a multiple of 128, input groups of a multiple of 128 rows.
// Launches of fewer CTAs than SMs split the inputs and their sums are added in split order: up
// to 16 tokens by the tile's splits, launched as one cluster; more tokens only with split_sums,
// by a second kernel. The result has the same bits either way.
void launch_linear_wgmma(const StreamParams& p, WeightFormat format, SplitSums split_sums,
                         cudaStream_t stream);

}  // namespace dsv4::cuda::gemm_detail
