// Token selection on the GPU, the twin of dsv4::Sampler::sample (src/engine/sampler.cpp):
// greedy arg-max, or temperature + top-p (nucleus) sampling that picks the same token as the
// CPU sampler given the same uniform draw u ∈ [0, 1) (the sampler's
// double(generator() >> 11) · 2^-53). All scratch is allocated up front; the launches take
// device pointers only, so a decode step can be captured in a CUDA graph and replayed with new
// logits, parameters and draws.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/runtime/device_buffer.h"

namespace dsv4::cuda {

class TokenSampler {
 public:
  // Scratch for up to max_rows rows of `vocab` fp32 logits (about 24 · max_rows · vocab bytes).
  TokenSampler(int64_t max_rows, int64_t vocab);

  // out[r] = the first index of the largest logit of row r (std::max_element).
  // logits: fp32 [rows, vocab] (device); out: int32 [rows] (device).
  void argmax(const float* logits, int64_t rows, int32_t* out, cudaStream_t stream);

  // Per row r: temperature[r] == 0 -> arg-max; otherwise the CPU sampler's choice: probabilities
  // p_i = exp((l_i − max) / T) in double, tokens ordered by p (ties to the lower id), the nucleus
  // is the shortest prefix whose mass reaches top_p · Σp, and the token is the first whose
  // cumulative mass exceeds uniform[r] · nucleus mass. temperature, top_p: fp32 [rows];
  // uniform: fp64 [rows]; all device arrays.
  void sample(const float* logits, int64_t rows, const float* temperature, const float* top_p,
              const double* uniform, int32_t* out, cudaStream_t stream);

  int64_t max_rows() const { return max_rows_; }
  int64_t vocab() const { return vocab_; }

 private:
  int64_t max_rows_, vocab_, chunks_;
  DeviceBuffer<float> chunk_max_;       // [max_rows, chunks]
  DeviceBuffer<int32_t> chunk_argmax_;  // [max_rows, chunks]
  DeviceBuffer<double> chunk_total_;    // [max_rows, chunks]
  DeviceBuffer<uint64_t> keys_, sorted_keys_;
  DeviceBuffer<int32_t> ids_, sorted_ids_;
  DeviceBuffer<unsigned char> sort_storage_;
};

}  // namespace dsv4::cuda
