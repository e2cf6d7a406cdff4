// Embedding gather: one block per token, 16-byte copies. Pure data movement: 2·hc·dim bytes
// written per token; the next optimisation is to fuse it into the first mHC collapse (the
// streams are identical copies, so that collapse could read the embedding row once).
#include "cuda/kernels/norm_rope_mhc/embedding.h"

#include <type_traits>

#include "core/error.h"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"

namespace dsv4::cuda {
namespace {

constexpr int kThreads = 256;

// N values per access: 8 (16 bytes) when every row starts 16-byte aligned, else 1.
template <int N>
__global__ void __launch_bounds__(kThreads)
    embed_kernel(const uint16_t* __restrict__ table, const int32_t* ids, int64_t dim, int64_t hc,
                 uint16_t* streams) {
  wait_for_previous_kernel();
  const int64_t token = blockIdx.x;
  const uint16_t* row = table + int64_t(ids[token]) * dim;
  uint16_t* out = streams + token * hc * dim;
  using Vec = typename std::conditional<N == 8, uint4, uint16_t>::type;
  for (int64_t i = int64_t(threadIdx.x) * N; i < dim; i += int64_t(kThreads) * N) {
    const Vec v = *reinterpret_cast<const Vec*>(row + i);
    for (int64_t j = 0; j < hc; ++j) *reinterpret_cast<Vec*>(out + j * dim + i) = v;
  }
}

}  // namespace

void embed_into_streams(const uint16_t* table, const int32_t* ids, int64_t tokens, int64_t dim,
                        int64_t hc, uint16_t* streams, cudaStream_t stream) {
  if (tokens < 0 || dim <= 0 || hc <= 0) {
    fail("embed_into_streams: bad shape tokens={} dim={} hc={}", tokens, dim, hc);
  }
  if (tokens == 0) return;
  const bool vec = dim % 8 == 0 && reinterpret_cast<uintptr_t>(table) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(streams) % 16 == 0;
  if (vec) {
    launch_dependent(embed_kernel<8>, unsigned(tokens), kThreads, 0, stream, table, ids, dim, hc,
                     streams);
  } else {
    launch_dependent(embed_kernel<1>, unsigned(tokens), kThreads, 0, stream, table, ids, dim, hc,
                     streams);
  }
}

}  // namespace dsv4::cuda
