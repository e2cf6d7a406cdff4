#include "cuda/runtime/device.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

namespace dsv4::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

std::string device_description(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "unknown device";
  return fmt::format("{} (sm_{}{}, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                     double(prop.totalGlobalMem) / double(1ull << 30));
}

}  // namespace dsv4::cuda
