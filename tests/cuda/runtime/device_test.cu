#include <gtest/gtest.h>

#include "cuda/runtime/device_buffer.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

TEST(DeviceBuffer, RoundTripsValuesThroughTheGpu) {
  DSV4_REQUIRE_GPU();
  const std::vector<float> host{1.0f, -2.5f, 3.25f};
  DeviceBuffer<float> buffer(host);
  EXPECT_EQ(buffer.download(), host);
}

TEST(Device, DescriptionNamesTheGpu) {
  DSV4_REQUIRE_GPU();
  EXPECT_NE(device_description(0).find("sm_"), std::string::npos);
}

}  // namespace
}  // namespace dsv4::cuda
