// The device half of launch_dependent() (cuda/runtime/launch.h): every kernel launched that way
// calls wait_for_previous_kernel() first. It blocks until the previous kernel in the stream has
// completed and its memory is visible (at once when the kernel was launched normally), then
// lets the next kernel's CTAs be scheduled: that kernel waits the same way, so at most two
// kernels overlap and only the next one's launch and scheduling hide behind this one's work.
//
// A kernel that waits must not mark as __restrict__ any pointer to data that an earlier kernel of
// the stream writes: a restrict pointer promises that nothing else touches its memory while the
// kernel runs, which lets the compiler load through it before the wait (the wait's memory clobber
// does not cover it). Weights and constant tables, written before any step, may stay restrict.
#pragma once

namespace dsv4::cuda {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// For a kernel that reads nothing the previous kernel writes (it follows a sibling that waited
// for their common inputs, as the wide expert tiles follow the narrow ones): the next kernel's
// CTAs may be scheduled from the start, and finish_after_previous_kernel(), called by every
// thread last, keeps this kernel from completing before the previous one, so that the next
// kernel's wait covers both.
__device__ __forceinline__ void release_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void finish_after_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

}  // namespace dsv4::cuda
