#include <gtest/gtest.h>

#include "core/formats.h"

TEST(Formats, Bf16RoundTripsOne) { EXPECT_EQ(dsv4::bf16_to_float(dsv4::float_to_bf16(1.0f)), 1.0f); }
