// Token embedding copied into the hc_mult residual streams (MODEL.md §2: "Embedding → copy
// into hc_mult = 4 residual streams").
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// table: bf16 [vocab, dim]; ids: [tokens] on the device, each in [0, vocab) (the engine
// validates ids on the host); streams: bf16 [tokens, hc, dim], every stream a copy of the row.
void embed_into_streams(const uint16_t* table, const int32_t* ids, int64_t tokens, int64_t dim,
                        int64_t hc, uint16_t* streams, cudaStream_t stream);

}  // namespace dsv4::cuda
