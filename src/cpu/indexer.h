// Lightning Indexer scoring and selection (MODEL.md §2 step 6): which compressed entries a
// CSA query attends to.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv4::cpu {

// score[s] = Σ_h w_h · relu(q_h · k_s) over the first `visible` keys, then the indices of the
// top min(topk, visible) scores by descending score, ties lower index first (the reference's
// sorted topk; the order places the entries in the attention's online-softmax blocks).
// q: [heads, dim], keys: [>= visible, dim], weights: [heads] (already scaled by
// dim^-0.5 · heads^-0.5). Official numerics round q·k, the weighted terms and the sum to bf16
// as the reference's bf16 einsum does.
std::vector<int64_t> indexer_select(const float* q, const float* weights, int64_t heads,
                                    int64_t dim, const float* keys, int64_t visible, int64_t topk,
                                    Numerics numerics);

}  // namespace dsv4::cpu
