// CUDA runtime errors become dsv4::Error naming the failing call, file and line.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define DSV4_CUDA_CHECK(call)                                                          \
  do {                                                                                 \
    const cudaError_t dsv4_status = (call);                                            \
    if (dsv4_status != cudaSuccess) {                                                  \
      ::dsv4::fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(dsv4_status), \
                   cudaGetErrorString(dsv4_status), #call, __FILE__, __LINE__);        \
    }                                                                                  \
  } while (0)
