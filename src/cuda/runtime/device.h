// What the CUDA runtime can see, without touching any model code.
#pragma once

#include <string>

namespace dsv4::cuda {

// Number of usable CUDA devices; 0 when the driver or a GPU is missing.
int device_count();
// "NVIDIA H200 (sm_90, 139.8 GiB)" for device `index`.
std::string device_description(int index);

// The current device's compute capability and SM count, read once per device (kernel
// launchers consult them on every call, including during graph capture).
struct DeviceTraits {
  int major = 0, minor = 0;
  int sm_count = 0;
};
const DeviceTraits& current_device_traits();

// Whether this build carries the sm_90a kernels (DSV4_SM90_KERNELS) and the current device, a
// 9.x GPU, runs them.
bool sm90_kernels_available();

}  // namespace dsv4::cuda
