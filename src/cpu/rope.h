// Rotary embedding on the last `rope_dim` dims of a vector, interleaved pairs (x[2i], x[2i+1])
// rotated by pos · f_i. Sliding-window layers use rope_theta; compressed layers (and their
// compressor and indexer) use compress_rope_theta with YaRN (MODEL.md §2 step 3).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv4::cpu {

class Rope {
 public:
  Rope(int64_t rope_dim, double theta, int64_t original_seq_len, double factor, double beta_fast,
       double beta_slow);
  static Rope for_layer(const ModelConfig& config, bool compressed);

  // Rotates x[0 .. rope_dim) (the caller passes the rope slice) at `position`; `inverse`
  // applies the conjugate. Math in fp32; the result is rounded as `numerics` says.
  void apply(float* x, int64_t position, bool inverse, Numerics numerics) const;
  size_t pair_count() const { return inv_freq_.size(); }

 private:
  std::vector<float> inv_freq_;
};

}  // namespace dsv4::cpu
