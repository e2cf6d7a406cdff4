// The indexer top-k alone, on given bf16 scores: the one-CTA kernel and the split over several
// CTAs a token against a plain sort (descending score, -0 equal to +0, ties to the lower index),
// on long rows with crowded ties (bf16 scores of 260K keys repeat a lot) and a row of one value,
// after a step of another size on the same workspace.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "attention/test_util.h"
#include "core/formats.h"
#include "cuda/kernels/indexer/indexer.h"
#include "cuda/runtime/check.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

constexpr int32_t kRatio = 4;

std::vector<int32_t> sorted_top(const uint16_t* scores, int32_t visible, int32_t topk) {
  std::vector<int32_t> order(static_cast<size_t>(visible));
  std::iota(order.begin(), order.end(), 0);
  const auto value = [&](int32_t i) { return bf16_to_float(scores[i]); };
  const int32_t n = std::min(visible, topk);
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t x, int32_t y) {
    return value(x) != value(y) ? value(x) > value(y) : x < y;
  });
  order.resize(size_t(topk), -1);
  std::fill(order.begin() + n, order.end(), -1);
  return order;
}

TEST(IndexerTopk, OneCtaAndSplitMatchASortOnLongRowsWithCrowdedTiesAfterAnotherStep) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("indexer top-k alone");
  const int32_t topk = 512;
  // Eight sequences at one long position (as a decode batch of equal contexts), one shorter.
  std::vector<test::Chunk> chunks;
  for (int32_t s = 0; s < 8; ++s) chunks.push_back({s, 1'040'000, 1});
  chunks.push_back({8, 150'000, 1});
  test::DeviceBatch batch(chunks);
  const int32_t T = batch.tokens();
  int32_t max_visible = 0;
  for (int32_t p : batch.position) max_visible = std::max(max_visible, (p + 1) / kRatio);
  const int64_t stride = (max_visible + 7) / 8 * 8;
  std::vector<uint16_t> scores(size_t(T) * size_t(stride), 0);
  for (int32_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < stride; ++i) {
      // Token 3: one value everywhere; the others: narrow normals, so bf16 values repeat.
      const float v = t == 3 ? 1.0f : 0.05f * test::normal(rng);
      scores[size_t(t) * size_t(stride) + size_t(i)] = float_to_bf16(v);
    }
  }
  DeviceBuffer<uint16_t> d_scores(scores);
  std::vector<uint8_t> dummy(256);
  DeviceBuffer<uint8_t> d_dummy(dummy);

  IndexerArgs args;
  args.batch = batch.view();
  args.q = reinterpret_cast<const uint16_t*>(d_dummy.data());
  args.weights = args.q;
  args.heads = 64;
  args.dim = 128;
  args.keys.row_bytes = 68;
  args.keys.block_rows = 64;
  args.ratio = kRatio;
  args.topk = topk;
  args.max_visible = max_visible;
  args.scores = d_scores.data();
  args.score_stride = stride;

  auto one_cta = test::poisoned<int32_t>(size_t(T) * topk);
  args.indices = one_cta.data();
  indexer_topk(args, nullptr);

  const size_t workspace_bytes = indexer_topk_workspace_bytes(T, max_visible, topk);
  ASSERT_GT(workspace_bytes, 0u) << "nothing would split";
  DeviceBuffer<uint8_t> workspace(workspace_bytes);
  DSV4_CUDA_CHECK(cudaMemset(workspace.data(), 0, workspace.size()));
  args.topk_workspace = workspace.data();
  args.topk_workspace_bytes = workspace_bytes;
  // A one-token step first, on the same workspace: a step of another size must find it ready.
  test::DeviceBatch first_token({chunks.front()});
  IndexerArgs single = args;
  single.batch = first_token.view();
  auto single_indices = test::poisoned<int32_t>(size_t(topk));
  single.indices = single_indices.data();
  indexer_topk(single, nullptr);
  auto split = test::poisoned<int32_t>(size_t(T) * topk);
  args.indices = split.data();
  indexer_topk(args, nullptr);  // twice: the second call finds what the first left
  indexer_topk(args, nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int32_t> got_one = one_cta.download(), got_split = split.download();
  for (int32_t t = 0; t < T; ++t) {
    const int32_t visible = (batch.position[size_t(t)] + 1) / kRatio;
    const std::vector<int32_t> want =
        sorted_top(scores.data() + size_t(t) * size_t(stride), visible, topk);
    const auto row = [&](const std::vector<int32_t>& v) {
      return std::vector<int32_t>(v.begin() + std::ptrdiff_t(t) * topk,
                                  v.begin() + std::ptrdiff_t(t + 1) * topk);
    };
    EXPECT_EQ(row(got_one), want) << "one CTA, token " << t << " (" << visible << " keys)";
    EXPECT_EQ(row(got_split), want) << "split, token " << t << " (" << visible << " keys)";
    if (t == 0) {
      EXPECT_EQ(single_indices.download(), want) << "split, the one-token step";
    }
  }
}

}  // namespace
}  // namespace dsv4::cuda
