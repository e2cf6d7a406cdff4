// Attention of one query head over a token's list of KV rows with DeepSeek-V4's sink
// (MODEL.md §2 step 7), computed the way DeepSeek's reference kernel computes it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv4::cpu {

// o = Σ_i w_i · v_i / (Σ_i e_i + exp(sink − M)) with s_i = scale · q·k_i, v_i = k_i, as an online
// softmax over blocks of kAttentionBlockRows list entries in list order: before block b the
// running maximum m grows to m_b = max(m_{b-1}, max_{i in b} s_i) and the fp32 output and row sum
// are multiplied by exp(m_{b-1} − m_b); e_i = exp(s_i − m_b); the sink enters with the final
// maximum M. A null row is a masked list entry (-1 in the reference): it holds its place in the
// blocks and contributes nothing. Official numerics weigh values by w_i = bf16(e_i), as the
// reference feeds P to its P·V product in bf16, and round o to bf16; fp32 numerics use e_i.
void attend_head(const float* q, const std::vector<const float*>& rows, int64_t dim, float scale,
                 float sink, Numerics numerics, float* out);

}  // namespace dsv4::cpu
