// Attention of one query head over a gathered list of KV rows with DeepSeek-V4's sink
// (MODEL.md §2 step 7).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv4::cpu {

// o = Σ_i w_i · v_i / (Σ_i e_i + exp(sink − M)), e_i = exp(s_i − M), s_i = scale · q·k_i,
// M = max_i s_i (the sink is not in the max), v_i = k_i. Official numerics weigh values by
// bf16(e_i) (the reference kernel feeds P to the PV product in bf16) and round o to bf16.
void attend_head(const float* q, const std::vector<const float*>& rows, int64_t dim, float scale,
                 float sink, Numerics numerics, float* out);

}  // namespace dsv4::cpu
