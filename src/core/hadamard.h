// Normalized Walsh–Hadamard transform (Sylvester order), y = H x / sqrt(n), used by the
// Lightning Indexer before its FP4 round trip. n must be a power of two (128 in the model).
#pragma once

#include <cstddef>

namespace dsv4 {

void hadamard_transform(float* x, size_t n);

}  // namespace dsv4
