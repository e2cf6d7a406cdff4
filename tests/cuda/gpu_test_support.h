// GPU tests skip cleanly where no CUDA device is visible (CI, laptops).
#pragma once

#include <gtest/gtest.h>

#include "cuda/runtime/device.h"

#define DSV4_REQUIRE_GPU()                                                        \
  do {                                                                            \
    if (::dsv4::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible"; \
  } while (0)
