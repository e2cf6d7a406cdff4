// Hopper (sm_90a) warpgroup MMA: shared-memory matrix descriptors and the wgmma shapes the
// attention kernels and the GEMMs use, as inline PTX. Compiled only where __CUDA_ARCH__
// >= 900; callers guard their sm_90a kernels the same way.
//
// Shared-memory operands use the 128-byte swizzle: an "atom" is 8 rows of 128 bytes (64 bf16),
// 1024-byte aligned, and the 16-byte chunk c of row r sits at chunk c ^ (r % 8). The same atom
// serves as a K-major operand (rows = M or N, 64 values of K per row) and as an MN-major one
// (rows = K, 64 values of N per row).
#pragma once

#include <cstdint>

#include "cuda/kernels/common/shared_memory.cuh"

namespace dsv4::cuda {

// Byte offset of bf16 element (row, col) inside a [rows][64] block of 128-byte-swizzled atoms.
__device__ __forceinline__ uint32_t swizzled_offset(int row, int col) {
  return uint32_t((row / 8) * 1024 + (row % 8) * 128 + (((col / 8) ^ (row % 8)) * 16) +
                  (col % 8) * 2);
}

// Matrix descriptor (PTX ISA "matrix-descriptor-encode"): start address, leading and stride
// byte offsets (16-byte units), swizzle mode 1 = 128 bytes.
//   K-major:  stride = bytes between 8-row groups (1024); leading unused (1).
//   MN-major: leading = bytes between 64-value groups along N; stride = bytes between 8-row
//             groups along K.
__device__ __forceinline__ uint64_t smem_descriptor(const void* start, uint32_t leading_bytes,
                                                    uint32_t stride_bytes) {
  const uint32_t address = shared_address(start);
  return uint64_t((address & 0x3ffffu) >> 4) | (uint64_t((leading_bytes >> 4) & 0x3fffu) << 16) |
         (uint64_t((stride_bytes >> 4) & 0x3fffu) << 32) | (uint64_t(1) << 62);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Orders this thread's register accesses before the next wgmma reads or writes them.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}
// Pins accumulator registers here: a wgmma wait names no registers, so without this the
// compiler may move reads of the accumulators above it (they look ready once the wgmma is
// issued) or writes below the next wgmma's issue.
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Makes this thread's generic-proxy shared-memory writes visible to wgmma and bulk copies.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// The accumulator operands of the wrappers below with 32, 64 or 128 of them: their places in
// the asm template and the operand list.
#define DSV4_WGMMA_ACC32_PLACES                                                                \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define DSV4_WGMMA_ACC64_PLACES                                                             \
  DSV4_WGMMA_ACC32_PLACES                                                                   \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, " \
  "%49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define DSV4_WGMMA_ACC128_PLACES                                                               \
  DSV4_WGMMA_ACC64_PLACES                                                                      \
  ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, "    \
  "%81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, " \
  "%99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, "  \
  "%114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define DSV4_WGMMA_ACC32(d)                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),    \
      "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),  \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),  \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define DSV4_WGMMA_OUT32(d)                                                                       \
  "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), \
      "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]),    \
      "=f"(d[15]), "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]),  \
      "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]),  \
      "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
#define DSV4_WGMMA_ACC64(d)                                                                      \
  DSV4_WGMMA_ACC32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),          \
      "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), \
      "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), \
      "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), \
      "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define DSV4_WGMMA_ACC128(d)                                                                     \
  DSV4_WGMMA_ACC64(d), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]),          \
      "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), \
      "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), \
      "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), \
      "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), \
      "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]),           \
      "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]),        \
      "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]),        \
      "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]),        \
      "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]),        \
      "+f"(d[127])

// The accumulator fragment of m64nN (per warp w of the warpgroup, lane l): d[4j + e] holds
// row 16w + l/4 (+ 8 for e >= 2), column 8j + 2·(l % 4) + (e & 1). A register fragment of
// m64k16 (bf16): a[0] = (row l/4, k 2·(l%4) .. +1), a[1] = row + 8, a[2] = k + 8, a[3] = both.

// d (+)= A·Bᵀ, A [64 x 16] and B [64 x 16] bf16, both K-major in shared memory (128-byte rows).
__device__ __forceinline__ void wgmma_m64n64k16_bf16_ss(float (&d)[32], uint64_t desc_a,
                                                        uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" DSV4_WGMMA_ACC32_PLACES
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : DSV4_WGMMA_ACC32(d)
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

// d = A·Bᵀ, previous values of d not read.
__device__ __forceinline__ void wgmma_m64n64k16_bf16_ss_first(float (&d)[32], uint64_t desc_a,
                                                              uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" DSV4_WGMMA_ACC32_PLACES
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : DSV4_WGMMA_OUT32(d)
      : "l"(desc_a), "l"(desc_b));
}
// d += A·B, A [64 x 16] bf16 K-major and B [16 x 256] MN-major, both from shared memory.
__device__ __forceinline__ void wgmma_m64n256k16_ss_mn(float (&d)[128], uint64_t desc_a,
                                                       uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" DSV4_WGMMA_ACC128_PLACES
      "}, %128, %129, p, 1, 1, 0, 1;\n}\n"
      : DSV4_WGMMA_ACC128(d)
      : "l"(desc_a), "l"(desc_b));
}
// d += A·B, A [64 x 16] bf16 from registers, B [16 x 256] MN-major from shared memory.
__device__ __forceinline__ void wgmma_m64n256k16_rs_mn(float (&d)[128], const uint32_t (&a)[4],
                                                       uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" DSV4_WGMMA_ACC128_PLACES
      "}, {%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
      : DSV4_WGMMA_ACC128(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 32] and B [128 x 32] e4m3, both K-major in shared memory (128-byte rows).
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_ss(float (&d)[64], uint64_t desc_a,
                                                         uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" DSV4_WGMMA_ACC64_PLACES
      "}, %64, %65, p, 1, 1;\n}\n"
      : DSV4_WGMMA_ACC64(d)
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 32] and B [16 x 32] e4m3, both K-major in shared memory (128-byte rows).
__device__ __forceinline__ void wgmma_m64n16k32_e4m3_ss(float (&d)[8], uint64_t desc_a,
                                                        uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7])
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 32] e4m3 from registers, B [8 x 32] e4m3 K-major in shared memory
// (128-byte rows). A fragment (lane l of warp w; four codes a register, lowest k in the lowest
// byte): a[0] = row 16w + l/4, k 4·(l%4) .. +3; a[1] = row + 8; a[2] = k + 16; a[3] = both.
// d as for every m64nN shape (d[e]: row 16w + l/4 (+ 8 for e >= 2), column 2·(l%4) + (e & 1));
// tests/cuda/gemm/wgmma_fragment_test.cpp checks both layouts against a host product.
__device__ __forceinline__ void wgmma_m64n8k32_e4m3_rs(float (&d)[4], const uint32_t (&a)[4],
                                                       uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)));
}

// The same with B [16 x 32] (two 8-row swizzle atoms, 1024 bytes apart): d[4j + e] holds
// column 8j + 2·(l%4) + (e & 1).
__device__ __forceinline__ void wgmma_m64n16k32_e4m3_rs(float (&d)[8], const uint32_t (&a)[4],
                                                        uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 32] e4m3 from registers (the fragment of wgmma_m64n8k32_e4m3_rs), B
// [64 x 32] e4m3 K-major in shared memory (8 atoms of 8 rows, 1024 bytes apart).
__device__ __forceinline__ void wgmma_m64n64k32_e4m3_rs(float (&d)[32], const uint32_t (&a)[4],
                                                        uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {" DSV4_WGMMA_ACC32_PLACES
      "}, {%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"
      : DSV4_WGMMA_ACC32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 32] e4m3 from registers (the fragment of wgmma_m64n8k32_e4m3_rs), B
// [128 x 32] e4m3 K-major in shared memory (16 atoms of 8 rows, 1024 bytes apart).
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_rs(float (&d)[64], const uint32_t (&a)[4],
                                                         uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" DSV4_WGMMA_ACC64_PLACES
      "}, {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
      : DSV4_WGMMA_ACC64(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 16] and B [16 x 16] bf16, both K-major in shared memory (128-byte rows).
__device__ __forceinline__ void wgmma_m64n16k16_bf16_ss(float (&d)[8], uint64_t desc_a,
                                                        uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7])
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

// d (+)= A·Bᵀ, A [64 x 16] and B [128 x 16] bf16, both K-major in shared memory (128-byte rows).
__device__ __forceinline__ void wgmma_m64n128k16_bf16_ss(float (&d)[64], uint64_t desc_a,
                                                         uint64_t desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" DSV4_WGMMA_ACC64_PLACES
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : DSV4_WGMMA_ACC64(d)
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

#undef DSV4_WGMMA_ACC32_PLACES
#undef DSV4_WGMMA_ACC64_PLACES
#undef DSV4_WGMMA_ACC128_PLACES
#undef DSV4_WGMMA_ACC32
#undef DSV4_WGMMA_OUT32
#undef DSV4_WGMMA_ACC64
#undef DSV4_WGMMA_ACC128

#endif  // __CUDA_ARCH__ >= 900

}  // namespace dsv4::cuda
