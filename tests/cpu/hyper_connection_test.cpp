#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/hyper_connection.h"

namespace dsv4::cpu {
namespace {

TEST(Sinkhorn, TwentyIterationsGiveADoublyStochasticMatrix) {
  std::vector<float> c{0.3f, -1.2f, 2.0f, 0.1f, 0.5f, 0.5f, -0.7f, 1.9f,
                       1.0f, 0.0f,  -2.f, 0.4f, 0.9f, 3.0f, 0.2f,  -0.1f};
  sinkhorn(c.data(), 4, 20, 1e-6f);
  for (int i = 0; i < 4; ++i) {
    float row = 0, column = 0;
    for (int j = 0; j < 4; ++j) {
      row += c[size_t(i * 4 + j)];
      column += c[size_t(j * 4 + i)];
    }
    EXPECT_NEAR(row, 1.0f, 1e-3f) << "row " << i;
    EXPECT_NEAR(column, 1.0f, 1e-5f) << "column " << i;
  }
}

TEST(Sinkhorn, OneIterationIsRowSoftmaxThenColumnNormalisation) {
  // Logits {0, 0; 0, ln 3}: row softmax {.5, .5; .25, .75}; columns sum to .75 and 1.25.
  std::vector<float> c{0.0f, 0.0f, 0.0f, std::log(3.0f)};
  sinkhorn(c.data(), 2, 1, 0.0f);
  EXPECT_NEAR(c[0], 0.5f / 0.75f, 1e-6f);
  EXPECT_NEAR(c[1], 0.5f / 1.25f, 1e-6f);
  EXPECT_NEAR(c[2], 0.25f / 0.75f, 1e-6f);
  EXPECT_NEAR(c[3], 0.75f / 1.25f, 1e-6f);
}

}  // namespace
}  // namespace dsv4::cpu
