// The indexer top-k split over several CTAs a token (indexer_topk_split.cu), used by indexer_topk()
// when a step has few tokens with many keys and args.topk_workspace holds the split's state.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/indexer/indexer.h"

namespace dsv4::cuda {

// CTAs a token for args (1: the one-CTA kernel): for steps of up to a quarter of the SMs' count
// of tokens with a large enough workspace, about two CTAs an SM over the batch, each of at least
// 2048 keys at args.max_visible.
int32_t indexer_topk_split_ctas(const IndexerArgs& args);
void launch_indexer_topk_split(const IndexerArgs& args, int32_t ctas, cudaStream_t stream);

}  // namespace dsv4::cuda
