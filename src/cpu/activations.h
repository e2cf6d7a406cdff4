// Where the reference keeps activations in bf16, `official` numerics round there; `fp32`
// numerics keep full precision. Every op calls this one helper at those points.
#pragma once

#include <cstddef>

#include "core/formats.h"
#include "model/config.h"

namespace dsv4::cpu {

inline void round_activations(float* x, size_t n, Numerics numerics) {
  if (numerics != Numerics::kOfficial) return;
  for (size_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
}

inline float round_activation(float x, Numerics numerics) {
  return numerics == Numerics::kOfficial ? round_bf16(x) : x;
}

}  // namespace dsv4::cpu
