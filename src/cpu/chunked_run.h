// Feeds one sequence in a given call pattern: prefill chunks of the given sizes, then the
// remaining ids one at a time (decode). Used by `dsv4 logits` and the golden tests.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/model.h"

namespace dsv4::cpu {

// Fails unless the chunk sizes are positive and sum to at most `id_count`.
void validate_chunks(size_t id_count, const std::vector<int32_t>& chunk_sizes);

// Returns the logits after every id, [ids.size(), vocab]. The chunk sizes must be positive
// and sum to at most ids.size().
std::vector<float> run_chunked(Model& model, const std::vector<int32_t>& ids,
                               const std::vector<int32_t>& chunk_sizes);

}  // namespace dsv4::cpu
