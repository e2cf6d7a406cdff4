#include "cuda/runtime/device.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <array>
#include <mutex>

#include "cuda/runtime/check.h"

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

bool sm90_kernels_available() {
#if defined(DSV4_SM90_KERNELS)
  return current_device_traits().major == 9;
#else
  return false;
#endif
}

const DeviceTraits& current_device_traits() {
  static std::mutex mutex;
  static std::array<DeviceTraits, 64> traits{};
  int device = 0;
  DSV4_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  DeviceTraits& t = traits.at(size_t(device));
  if (t.sm_count == 0) {
    DSV4_CUDA_CHECK(cudaDeviceGetAttribute(&t.major, cudaDevAttrComputeCapabilityMajor, device));
    DSV4_CUDA_CHECK(cudaDeviceGetAttribute(&t.minor, cudaDevAttrComputeCapabilityMinor, device));
    DSV4_CUDA_CHECK(cudaDeviceGetAttribute(&t.sm_count, cudaDevAttrMultiProcessorCount, device));
  }
  return t;
}

}  // namespace dsv4::cuda
