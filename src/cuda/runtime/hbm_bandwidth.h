// The memory ceilings a benchmark divides by, measured in the same run (PERFORMANCE.md, method
// step 4): HBM read bandwidth of a streaming read-reduce kernel and device-to-device copy
// bandwidth, each over buffers far larger than L2, median of timed runs after a warm-up.
#pragma once

#include <cstddef>

namespace dsv4::cuda {

inline constexpr size_t kBandwidthBufferBytes = size_t(2) << 30;  // 2 GiB: > 2x any L2
inline constexpr int kBandwidthRuns = 20;

// Bytes read per second by a kernel that loads every 16-byte word of a `bytes` buffer once.
double measure_hbm_read_bandwidth(size_t bytes = kBandwidthBufferBytes, int runs = kBandwidthRuns);

// (read + written) bytes per second of cudaMemcpyAsync between two buffers of bytes / 2 each.
double measure_d2d_copy_bandwidth(size_t bytes = kBandwidthBufferBytes, int runs = kBandwidthRuns);

}  // namespace dsv4::cuda
