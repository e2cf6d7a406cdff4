#include "core/hadamard.h"

#include <cmath>

#include "core/error.h"

namespace dsv4 {

void hadamard_transform(float* x, size_t n) {
  if (n == 0 || (n & (n - 1)) != 0) fail("hadamard_transform: length {} is not a power of two", n);
  for (size_t half = 1; half < n; half *= 2) {
    for (size_t start = 0; start < n; start += 2 * half) {
      for (size_t i = start; i < start + half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
    }
  }
  const float scale = float(1.0 / std::sqrt(double(n)));  // the fp32 of n^-0.5, as the reference
  for (size_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace dsv4
