// The 32-bit shared-window address of a pointer into shared memory, as PTX instructions that
// take shared addresses (ldmatrix, mbarrier, cp.async, matrix descriptors) expect it.
#pragma once

#include <cstdint>

namespace dsv4::cuda {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

}  // namespace dsv4::cuda
