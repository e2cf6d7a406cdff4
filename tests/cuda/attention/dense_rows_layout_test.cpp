// The dense-row regions of a batch (dense_rows_layout, host only): per chunk the window
// positions p0 - window + 1 .. p_last, then the compressed entries up to the chunk's end, chunks
// in batch order. Expected values computed by hand.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "cuda/kernels/attention/dense_rows_layout.h"

namespace dsv4::cuda {
namespace {

// Three chunks: 200 tokens at positions 300..499, 37 at 0..36, one decode token at 5000.
struct Batch {
  std::vector<int32_t> position, begin, end;
  Batch() {
    const auto add = [&](int32_t first_position, int32_t count) {
      const auto first = int32_t(position.size());
      for (int32_t i = 0; i < count; ++i) {
        position.push_back(first_position + i);
        begin.push_back(first);
        end.push_back(first + count);
      }
    };
    add(300, 200);
    add(0, 37);
    add(5000, 1);
  }
};

TEST(DenseRowsLayout, RegionsHoldTheWindowSpanThenTheChunksEntries) {
  const Batch b;
  std::vector<int32_t> base(b.position.size());
  // Window 128, CSA ratio 4: 128 + 199 + 500 / 4 = 452 rows, 128 + 36 + 37 / 4 = 173, then
  // 128 + 0 + 5001 / 4 = 1378.
  EXPECT_EQ(dense_rows_layout(b.position, b.begin, b.end, 128, 4, base), 452 + 173 + 1378);
  EXPECT_EQ(base[0], 0);
  EXPECT_EQ(base[199], 0);
  EXPECT_EQ(base[200], 452);
  EXPECT_EQ(base[236], 452);
  EXPECT_EQ(base[237], 452 + 173);
}

TEST(DenseRowsLayout, WindowOnlyLayersHoldNoEntries) {
  const Batch b;
  std::vector<int32_t> base(b.position.size());
  EXPECT_EQ(dense_rows_layout(b.position, b.begin, b.end, 128, 0, base), 327 + 164 + 128);
  EXPECT_EQ(base[200], 327);
  EXPECT_EQ(base[237], 327 + 164);
}

TEST(DenseRowsLayout, RejectsABaseOfAnotherLengthThanTheBatch) {
  const Batch b;
  std::vector<int32_t> base(b.position.size() - 1);
  EXPECT_THROW(dense_rows_layout(b.position, b.begin, b.end, 128, 4, base), Error);
}

}  // namespace
}  // namespace dsv4::cuda
