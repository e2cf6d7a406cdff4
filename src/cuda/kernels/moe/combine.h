// The MoE output (MODEL.md §2 "MoE"): routed expert outputs summed in fp32 in ascending
// expert id per token (deterministic, as cpu::moe_forward), plus the shared expert, rounded to
// bf16 once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

// expert_out: bf16 [tokens · k, dim] in grouped order (the w2 outputs, already rounded);
// experts: int32 [tokens, k] (moe_route); position: int32 [tokens · k] (moe_group);
// shared_out: bf16 [tokens, dim] or null; out: bf16 [tokens, dim].
void moe_combine(const uint16_t* expert_out, const int32_t* experts, const int32_t* position,
                 const uint16_t* shared_out, int64_t tokens, int64_t k, int64_t dim, uint16_t* out,
                 cudaStream_t stream);

}  // namespace dsv4::cuda
