// The layout of the dense (bf16) rows that sparse_attention() reads for prefill steps
// (DenseRowsView): one region per chunk, planned on the host from the batch's positions.
#pragma once

#include <cstdint>
#include <span>

namespace dsv4::cuda {

// A chunk's region of dense rows: window positions p0 - window + 1 .. p_last (window + n - 1
// rows, those below 0 unused), then compressed entries 0 .. (p_last + 1) / entry_ratio - 1.
// Fills base[t] for every token (host copies of the batch's positions and chunk bounds; base has
// one element per token) and returns the rows needed.
int64_t dense_rows_layout(std::span<const int32_t> position, std::span<const int32_t> chunk_begin,
                          std::span<const int32_t> chunk_end, int32_t window, int32_t entry_ratio,
                          std::span<int32_t> base);

}  // namespace dsv4::cuda
