#include "cuda/kernels/attention/dense_rows_layout.h"

#include <climits>

#include "core/error.h"

namespace dsv4::cuda {

int64_t dense_rows_layout(std::span<const int32_t> position, std::span<const int32_t> chunk_begin,
                          std::span<const int32_t> chunk_end, int32_t window, int32_t entry_ratio,
                          std::span<int32_t> base) {
  if (chunk_begin.size() != position.size() || chunk_end.size() != position.size() ||
      base.size() != position.size()) {
    fail("dense_rows_layout: {} positions, {} chunk begins, {} chunk ends, {} bases",
         position.size(), chunk_begin.size(), chunk_end.size(), base.size());
  }
  int64_t total = 0;
  for (size_t t = 0; t < position.size(); ++t) {
    if (chunk_begin[t] == int32_t(t)) {
      const int32_t n = chunk_end[t] - chunk_begin[t];
      const int32_t last = position[t] + n - 1;
      if (total > INT32_MAX) fail("dense_rows_layout: more than 2^31 rows");
      base[t] = int32_t(total);
      total += window + n - 1 + (entry_ratio > 0 ? (last + 1) / entry_ratio : 0);
    } else {
      base[t] = base[size_t(chunk_begin[t])];
    }
  }
  return total;
}

}  // namespace dsv4::cuda
