// Asynchronous copies into shared memory: cp.async with commit groups (sm_80 and later), and for
// Hopper's warp-specialised kernels mbarriers, bulk and tensor copies, cp.async whose completion
// arrives on an mbarrier, and named barriers (compiled only where __CUDA_ARCH__ >= 900). Inline
// PTX.
#pragma once

#include <cstdint>

#include "cuda/kernels/common/shared_memory.cuh"

namespace dsv4::cuda {

// ---- cp.async with commit groups (sm_80 and later) ----------------------------------------

// Copies 8 bytes (both addresses 8-byte aligned) from global into shared memory, asynchronously.
__device__ __forceinline__ void cp_async_8(void* dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(shared_address(dst)), "l"(src)
               : "memory");
}

// cp.async with commit groups (a thread waits for its own copies) to a shared-window address:
// 16 bytes through L2 only, or 4 bytes; both addresses aligned to the size.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
// 16 bytes when `copy`, else 16 zero bytes (src is not read but must be a valid address).
__device__ __forceinline__ void cp_async_16_or_zero(uint32_t dst, const void* src, bool copy) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(copy ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most `kPending` of this thread's commit groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// ---- sm_90 -------------------------------------------------------------------------------

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

__device__ __forceinline__ void mbarrier_init(uint64_t* barrier, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(barrier)),
               "r"(arrivals)
               : "memory");
}

// Makes mbarrier initialisation visible to the other threads and to the copy engine.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* barrier) {
  asm volatile(
      "{\n.reg .b64 state;\nmbarrier.arrive.release.cta.shared::cta.b64 state, [%0];\n}\n" ::"r"(
          shared_address(barrier))
      : "memory");
}

// One arrival that also announces `bytes` more to land in this phase through bulk copies.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* barrier, uint32_t bytes) {
  asm volatile(
      "{\n.reg .b64 state;\n"
      "mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
          shared_address(barrier)),
      "r"(bytes)
      : "memory");
}

// Blocks until the phase with the given parity has completed (a fresh barrier counts its
// "previous" phase, parity 1, as complete).
__device__ __forceinline__ void mbarrier_wait(uint64_t* barrier, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(shared_address(barrier)),
      "r"(parity)
      : "memory");
}

// A bulk (1-D TMA) copy of `bytes` (a multiple of 16; both addresses 16-byte aligned) from
// global into shared memory, counted on `barrier`'s transaction bytes when it lands.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes,
                                                    uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(shared_address(dst)),
      "l"(src), "r"(bytes), "r"(shared_address(barrier))
      : "memory");
}

// One box of a 2-D tensor map (a __grid_constant__ kernel parameter) at column x, row y into
// shared memory, counted on `barrier`'s transaction bytes when it lands (zeros outside the map).
__device__ __forceinline__ void tensor_copy_2d_to_shared(void* dst, const void* map, int32_t x,
                                                         int32_t y, uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(shared_address(dst)),
      "l"(map), "r"(x), "r"(y), "r"(shared_address(barrier))
      : "memory");
}

// One box of shared memory (the layout tensor_copy_2d_to_shared writes) to a 2-D tensor map at
// column x, row y, in this thread's bulk async-group; the source must stay untouched until
// bulk_wait_shared_read() returns.
__device__ __forceinline__ void tensor_store_2d_from_shared(const void* map, int32_t x, int32_t y,
                                                            const void* src) {
  asm volatile(
      "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(map),
      "r"(x), "r"(y), "r"(shared_address(src))
      : "memory");
}
__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Waits until every bulk store this thread committed has read its shared memory source.
__device__ __forceinline__ void bulk_wait_shared_read() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}

// One arrival on `barrier` once all of this thread's earlier cp.async copies have landed (the
// barrier's expected count must include it: .noinc).
__device__ __forceinline__ void cp_async_arrive_noinc(uint64_t* barrier) {
  asm volatile(
      "cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(barrier))
      : "memory");
}

// Barrier `id` (1..15; 0 is __syncthreads) over `threads` threads (a multiple of 32).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Arrives at barrier `id` without waiting (the waiting side calls named_barrier_sync).
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Barrier kId over `threads` threads that also returns whether `value` holds in all of them.
template <int kId>
__device__ __forceinline__ bool named_barrier_and(int threads, bool value) {
  uint32_t all;
  asm volatile(
      "{\n.reg .pred in, out;\nsetp.ne.u32 in, %1, 0;\n"
      "bar.red.and.pred out, %2, %3, in;\nselp.u32 %0, 1, 0, out;\n}\n"
      : "=r"(all)
      : "r"(uint32_t(value)), "n"(kId), "r"(threads)
      : "memory");
  return all != 0;
}

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda
