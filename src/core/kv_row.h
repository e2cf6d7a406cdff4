// Exact storage forms of attention state (MODEL.md §3), shared by every backend.
//   KV row:    the first (d - rd) dims as e4m3 with one ue8m0 scale per 64 values, the last rd
//              (rotary) dims as bf16. For d = 512, rd = 64: 448 + 7 + 128 = 583 bytes, padded
//              to 584 (FlashMLA's V4 row size).
//   Index key: d values as packed e2m1 with one ue8m0 scale per 32 values (d = 128: 64 + 4).
// Byte order within a row: [nope e4m3 | rope bf16 | nope scales | padding].
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsv4 {

struct KvRowFormat {
  size_t head_dim;
  size_t rope_dim;

  size_t nope_dim() const { return head_dim - rope_dim; }
  size_t scale_count() const;  // one per 64 nope values
  size_t bytes() const;        // padded to a multiple of 8

  // Quantizes the nope dims of `row` (FP8, 64-wide blocks) and stores the rope dims as bf16
  // (they must already be bf16 values).
  void encode(const float* row, uint8_t* out) const;
  void decode(const uint8_t* in, float* row) const;
};

struct IndexKeyFormat {
  size_t dim;

  size_t bytes() const;  // dim/2 packed e2m1 + dim/32 scales
  void encode(const float* key, uint8_t* out) const;
  void decode(const uint8_t* in, float* key) const;
};

}  // namespace dsv4
