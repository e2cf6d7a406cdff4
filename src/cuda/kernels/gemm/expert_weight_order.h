// Routed experts' MXFP4 codes and scales reordered once at load for the sm_90 expert kernels
// (fp4_fragment_order.cuh): with each thread's fragment codes in one 4-byte word, the token
// codes stay in their natural order and a stage's copies move whole 16-byte runs; with the rows
// stored by 64-row bands, stage by stage, a CTA's stage is one contiguous run of memory. The
// rows' scale scan that picks the prefill kernel's encoding (fp4_expert_wgmma.cu) is done here
// once.
#pragma once

#include <cuda_runtime.h>

#include "cuda/kernels/gemm/linear.h"

namespace dsv4::cuda {

// Where the experts are MXFP4 in the natural order, their inputs a multiple of 128 and the device
// runs the sm_90 kernels:
// reorders their codes and scales in place (Fp4Order::kMmaTiles) and records each row's
// exponent for the prefill kernel's scale-folded encoding (DevicePackedLinears::row_exponents),
// on `stream` (returning once it is done: a scratch buffer is freed).
// Otherwise leaves them as they are (the CUDA-core kernels read the natural order).
void order_experts_for_tensor_cores(DevicePackedLinears& experts, cudaStream_t stream = nullptr);

}  // namespace dsv4::cuda
