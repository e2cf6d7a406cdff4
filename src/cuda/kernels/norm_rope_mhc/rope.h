// Rotary embedding on the trailing rope dims of every head (MODEL.md §2 step 3), the twin of
// cpu::Rope: interleaved pairs (x[2i], x[2i+1]) rotated by pos · f_i in fp32, rounded to bf16.
// The frequency table is core/rope_frequencies.h, shared with cpu::Rope, uploaded once;
// positions come from a device array, so a captured decode graph replays at new positions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/runtime/device_buffer.h"
#include "model/config.h"

namespace dsv4::cuda {

// The table of cpu::Rope::for_layer(config, compressed).
std::vector<float> rope_inv_freq_for_layer(const ModelConfig& config, bool compressed);

// The table on the device (rope_dim = 2 · pairs, at most 128).
class RopeTable {
 public:
  explicit RopeTable(const std::vector<float>& inv_freq);
  const float* inv_freq() const { return inv_freq_.data(); }
  int64_t rope_dim() const { return 2 * int64_t(inv_freq_.size()); }

 private:
  DeviceBuffer<float> inv_freq_;
};

// x: bf16 rows of `heads` heads, head_dim values each, consecutive rows row_stride values
// apart (heads · head_dim when packed). Rotates the last table.rope_dim() values of every
// head of row r at positions[r] (device, [rows]); `inverse` applies the conjugate. In place.
void apply_rope(uint16_t* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t row_stride,
                const RopeTable& table, const int32_t* positions, bool inverse,
                cudaStream_t stream);

}  // namespace dsv4::cuda
