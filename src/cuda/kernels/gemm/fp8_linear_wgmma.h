// Dense FP8 linears on sm_90 FP8 warpgroup MMAs (internal to the gemm domain; scaled_gemm()
// picks them): the block-scaled product of scaled_gemm.h with the FP8 tensor cores'
// accumulation inside each 128-input block, promoted to fp32 per block as DeepSeek's reference
// GEMM does. The CUDA-core weight-streaming kernel (weight_stream.cuh) serves fewer tokens.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda::gemm_detail {

struct StreamParams;  // weight_stream_formats.cuh

// Token counts from which scaled_gemm() runs FP8 weights on the warpgroup MMAs: all, so that a
// token's output does not depend on the batch it is in.
inline constexpr int64_t kFp8LinearWgmmaMinTokens = 1;

// Whether this build and the current device run the kernel (sm_90a code, a 9.x device).
bool fp8_linear_wgmma_available();

// The most partial sums a launch splits into on this device: scratch of this many floats lets
// every shape split as far as it wants.
int64_t fp8_linear_split_floats();

// p as for the weight-streaming kernel (FP8 weights with float scales, FP8 activations, one
// input group). With split_sums, launches of fewer CTAs than SMs split the inputs and add the
// splits' sums in a second kernel, in split order; the result has the same bits either way.
void launch_fp8_linear_wgmma(const StreamParams& p, SplitSums split_sums, cudaStream_t stream);

}  // namespace dsv4::cuda::gemm_detail
