// RoPE inverse frequencies f_i = base^(-2i/d) (in fp32, as the reference computes them), with
// YaRN's ramp between beta_fast and beta_slow when original_seq_len > 0 (MODEL.md §2 step 3).
// One table for every backend, so CPU and GPU rotate by bit-identical angles.
#pragma once

#include <cstdint>
#include <vector>

namespace dsv4 {

// rope_dim / 2 values; rope_dim must be even and positive.
std::vector<float> rope_inverse_frequencies(int64_t rope_dim, double theta,
                                            int64_t original_seq_len, double factor,
                                            double beta_fast, double beta_slow);

}  // namespace dsv4
