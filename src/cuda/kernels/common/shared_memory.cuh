// The 32-bit shared-window address of a pointer into shared memory, as PTX instructions that
// take shared addresses (ldmatrix, mbarrier, cp.async, matrix descriptors) expect it.
#pragma once

#include <cstdint>

namespace dsv4::cuda {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Loads from a shared-window address (no generic-to-shared conversion in the loop).
__device__ __forceinline__ uint32_t ld_shared_u32(uint32_t address) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(address) : "memory");
  return v;
}
__device__ __forceinline__ float ld_shared_f32(uint32_t address) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(address) : "memory");
  return v;
}
__device__ __forceinline__ float4 ld_shared_f32x4(uint32_t address) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(address)
               : "memory");
  return v;
}

// A value the front end treats as unknown, so that a loop keeps it in a register instead of
// recomputing it from its inputs at every use (which nvcc did under a register cap). It does
// not hide literal constants from ptxas, which sees through the empty asm.
__device__ __forceinline__ uint32_t opaque(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

}  // namespace dsv4::cuda
