// Lightning Indexer scores + top-k against cpu::indexer_select (official numerics) on paged
// FP4 keys: Flash (top-k 512) and Pro (top-k 1024) at 64 heads x 128 dims, visible counts below,
// at and above top-k (-1 padding), positions up to 1M, exact ties, a tiny prefill chunk; plus
// a timing printout for one token at 1M context.
#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include "attention/test_util.h"
#include "core/error.h"
#include "core/hadamard.h"
#include "core/kv_row.h"
#include "core/quantize.h"
#include "core/thread_pool.h"
#include "cpu/indexer.h"
#include "cpu/linear.h"
#include "cuda/kernels/indexer/indexer.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

constexpr int32_t kRatio = 4;
constexpr int32_t kBlockRows = 64;

// Index keys of several sequences in a test-owned pool with shuffled block tables.
class PagedKeys {
 public:
  PagedKeys(int32_t sequences, int64_t keys_per_sequence, int dim, std::mt19937_64& rng)
      : format_{size_t(dim)}, dim_(dim) {
    blocks_per_sequence_ = (keys_per_sequence + kBlockRows - 1) / kBlockRows;
    std::vector<int32_t> table(size_t(sequences * blocks_per_sequence_));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    table_ = DeviceBuffer<int32_t>(table);
    host_table_ = table;
    pool_.assign(table.size() * kBlockRows * format_.bytes(), 0);
    decoded_.resize(size_t(sequences));
  }

  // Appends a key to `sequence` from raw values: Hadamard, bf16, FP4 (as the compressor).
  void append(int32_t sequence, std::vector<float> key) {
    hadamard_transform(key.data(), key.size());
    for (float& x : key) x = round_bf16(x);
    std::vector<float>& decoded = decoded_[size_t(sequence)];
    const int64_t index = int64_t(decoded.size()) / dim_;
    const int64_t block = host_table_[size_t(sequence * blocks_per_sequence_ + index / kBlockRows)];
    uint8_t* row = pool_.data() + size_t(block * kBlockRows + index % kBlockRows) * format_.bytes();
    format_.encode(key.data(), row);
    decoded.resize(decoded.size() + size_t(dim_));
    format_.decode(row, decoded.data() + index * dim_);
  }

  PagedRowsView upload() {
    device_pool_ = DeviceBuffer<uint8_t>(pool_);
    PagedRowsView v;
    v.pool = device_pool_.data();
    v.table = table_.data();
    v.table_stride = blocks_per_sequence_;
    v.block_rows = kBlockRows;
    v.row_bytes = int32_t(format_.bytes());
    return v;
  }
  const float* keys(int32_t sequence) const { return decoded_[size_t(sequence)].data(); }

 private:
  IndexKeyFormat format_;
  int dim_;
  int64_t blocks_per_sequence_ = 0;
  std::vector<int32_t> host_table_;
  DeviceBuffer<int32_t> table_;
  std::vector<uint8_t> pool_;
  DeviceBuffer<uint8_t> device_pool_;
  std::vector<std::vector<float>> decoded_;
};

struct Case {
  explicit Case(const char* name_) : name(name_) {}
  const char* name;
  int heads = 64, dim = 128, topk = 512;
  std::vector<std::pair<int32_t, int32_t>> chunks;  // (start, count) per sequence
  int distinct_keys = 0;                            // > 0: keys drawn from so many vectors
  bool time_last = false;                           // time the batch's last token alone
};

void run_case(const Case& c) {
  auto rng = test::fresh_rng(c.name);
  const int H = c.heads, dim = c.dim;
  std::vector<test::Chunk> chunks;
  int64_t most_keys = 1;
  for (size_t s = 0; s < c.chunks.size(); ++s) {
    chunks.push_back({int32_t(s), c.chunks[s].first, c.chunks[s].second});
    most_keys = std::max<int64_t>(most_keys, (c.chunks[s].first + c.chunks[s].second) / kRatio);
  }
  test::DeviceBatch batch(chunks);
  const int32_t T = batch.tokens();

  PagedKeys keys(int32_t(chunks.size()), most_keys, dim, rng);
  std::vector<std::vector<float>> palette(size_t(c.distinct_keys));
  for (auto& v : palette) {
    v.resize(size_t(dim));
    for (float& x : v) x = test::normal(rng);
  }
  int32_t max_visible = 0;
  for (const test::Chunk& ch : chunks) {
    const int32_t n = (ch.start + ch.count) / kRatio;
    max_visible = std::max(max_visible, n);
    for (int32_t k = 0; k < n; ++k) {
      std::vector<float> key(static_cast<size_t>(dim));
      if (c.distinct_keys > 0) {
        key = palette[rng() % palette.size()];
      } else {
        for (float& x : key) x = test::normal(rng);
      }
      keys.append(ch.slot, key);
    }
  }
  const PagedRowsView view = keys.upload();

  // Queries as the model makes them: Hadamard, bf16, FP4 round trip; weights scaled, bf16.
  std::vector<float> q(size_t(T) * H * dim), w(size_t(T) * H);
  for (size_t head = 0; head < size_t(T) * H; ++head) {
    float* x = q.data() + head * size_t(dim);
    for (int i = 0; i < dim; ++i) x[i] = test::normal(rng);
    hadamard_transform(x, size_t(dim));
    for (int i = 0; i < dim; ++i) x[i] = round_bf16(x[i]);
    fp4_round_trip(x, size_t(dim));
  }
  const float w_scale = float(1.0 / std::sqrt(double(dim)) / std::sqrt(double(H)));
  for (float& x : w) x = round_bf16(test::normal(rng) * w_scale);
  DeviceBuffer<uint16_t> d_q(test::to_bf16_bits(q)), d_w(test::to_bf16_bits(w));
  const int64_t stride = (max_visible + 7) / 8 * 8;
  auto scores = test::poisoned<uint16_t>(size_t(T) * size_t(std::max<int64_t>(stride, 8)));
  auto indices = test::poisoned<int32_t>(size_t(T) * size_t(c.topk));
  DSV4_CUDA_CHECK(cudaMemset(indices.data(), 0x7f, indices.size() * 4));  // not -1, not valid

  IndexerArgs args;
  args.batch = batch.view();
  args.q = d_q.data();
  args.weights = d_w.data();
  args.keys = view;
  args.heads = H;
  args.dim = dim;
  args.ratio = kRatio;
  args.topk = c.topk;
  args.max_visible = max_visible;
  args.scores = scores.data();
  args.score_stride = std::max<int64_t>(stride, 8);
  args.indices = indices.data();
  indexer_select(args, nullptr);
  // The top-k again with a workspace, split over several CTAs a token where that pays (the
  // workspace zeroed once, as the model does).
  const size_t workspace_bytes = indexer_topk_workspace_bytes(T, max_visible, c.topk);
  DeviceBuffer<uint8_t> workspace(std::max<size_t>(workspace_bytes, 1));
  DSV4_CUDA_CHECK(cudaMemset(workspace.data(), 0, workspace.size()));
  auto split_indices = test::poisoned<int32_t>(indices.size());
  DSV4_CUDA_CHECK(cudaMemset(split_indices.data(), 0x7f, split_indices.size() * 4));
  IndexerArgs split = args;
  split.indices = split_indices.data();
  split.topk_workspace = workspace.data();
  split.topk_workspace_bytes = workspace_bytes;
  indexer_topk(split, nullptr);  // twice: the second call finds what the first left
  indexer_topk(split, nullptr);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int32_t> got = indices.download();
  const std::vector<int32_t> got_split = split_indices.download();
  const std::vector<uint16_t> got_scores = scores.download();

  // The CPU, and its scores (the same formula) to compare the bf16 scores bit for bit.
  std::vector<std::vector<int64_t>> want(static_cast<size_t>(T));
  std::vector<int64_t> score_mismatches(static_cast<size_t>(T), 0);
  ThreadPool::global().parallel_for(size_t(T), 1, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const int32_t seq = batch.slot[t];
      const int32_t visible = (batch.position[t] + 1) / kRatio;
      const float* qt = q.data() + t * size_t(H * dim);
      const float* wt = w.data() + t * size_t(H);
      want[t] =
          cpu::indexer_select(qt, wt, H, dim, keys.keys(seq), visible, c.topk, Numerics::kOfficial);
      for (int32_t s = 0; s < visible; ++s) {
        float total = 0.0f;
        for (int h = 0; h < H; ++h) {
          const float logit = round_bf16(cpu::dot(qt + h * dim, keys.keys(seq) + s * dim, dim));
          total += round_bf16(std::max(logit, 0.0f) * wt[h]);
        }
        if (float_to_bf16(total) != got_scores[t * size_t(args.score_stride) + size_t(s)]) {
          ++score_mismatches[t];
        }
      }
    }
  });
  for (int32_t t = 0; t < T; ++t) {
    const int32_t visible = (batch.position[size_t(t)] + 1) / kRatio;
    std::vector<int32_t> expected(size_t(c.topk), -1);
    for (size_t i = 0; i < want[size_t(t)].size(); ++i) expected[i] = int32_t(want[size_t(t)][i]);
    const std::vector<int32_t> row(got.begin() + std::ptrdiff_t(t) * c.topk,
                                   got.begin() + std::ptrdiff_t(t + 1) * c.topk);
    EXPECT_EQ(score_mismatches[size_t(t)], 0)
        << c.name << " token " << t << ": bf16 scores differing from the CPU formula (q·k is "
        << "expected exact in fp32 for FP4-valued q and k)";
    EXPECT_EQ(row, expected) << c.name << " token " << t << " at position "
                             << batch.position[size_t(t)] << " (" << visible
                             << " visible): index sets differ; " << score_mismatches[size_t(t)]
                             << " scores differ from the CPU, a near-tie at the k-th score would "
                                "explain a swapped index";
    const std::vector<int32_t> split_row(got_split.begin() + std::ptrdiff_t(t) * c.topk,
                                         got_split.begin() + std::ptrdiff_t(t + 1) * c.topk);
    EXPECT_EQ(split_row, expected) << c.name << " token " << t << " (" << visible
                                   << " visible): the split top-k's list differs";
  }
  std::printf("[%s] %d tokens, up to %d visible keys, top-k %d: index lists identical: %s\n",
              c.name, T, max_visible, c.topk, ::testing::Test::HasFailure() ? "NO" : "yes");

  if (c.time_last) {
    test::DeviceBatch one({{chunks.back().slot, batch.position.back(), 1}});
    IndexerArgs single = args;
    single.batch = one.view();
    single.q = d_q.data() + size_t(T - 1) * H * dim;
    single.weights = d_w.data() + size_t(T - 1) * H;
    const int32_t visible = (batch.position.back() + 1) / kRatio;
    const float scores_ms = test::median_ms(20, [&](int) { indexer_scores(single, nullptr); });
    const float topk_ms = test::median_ms(20, [&](int) { indexer_topk(single, nullptr); });
    single.topk_workspace = workspace.data();
    single.topk_workspace_bytes = workspace_bytes;
    const float split_ms = test::median_ms(20, [&](int) { indexer_topk(single, nullptr); });
    const double bytes = double(visible) * view.row_bytes;
    std::printf(
        "[timing] indexer, 1 token, %d keys (%.1f MB of FP4 keys), %d heads: scores %.1f "
        "us (%.2f TB/s on keys), top-%d %.1f us (one CTA), %.1f us (split)\n",
        visible, bytes / 1e6, H, scores_ms * 1e3, bytes / (scores_ms * 1e-3) / 1e12, c.topk,
        topk_ms * 1e3, split_ms * 1e3);
  }
}

std::vector<std::pair<int32_t, int32_t>> decode_at(std::initializer_list<int32_t> positions) {
  std::vector<std::pair<int32_t, int32_t>> chunks;
  for (int32_t p : positions) chunks.push_back({p, 1});
  return chunks;
}

TEST(Indexer, FlashTopk512UpTo1MContext) {
  DSV4_REQUIRE_GPU();
  Case c("indexer Flash, top-k 512");
  c.chunks = decode_at({3, 100, 2047, 2051, 10'000, 1'000'000});
  c.time_last = true;
  run_case(c);
}

TEST(Indexer, ProTopk1024) {
  DSV4_REQUIRE_GPU();
  Case c("indexer Pro, top-k 1024");
  c.topk = 1024;
  c.chunks = decode_at({4095, 4099, 70'000});
  run_case(c);
}

TEST(Indexer, ExactTiesGoToTheLowerIndex) {
  DSV4_REQUIRE_GPU();
  Case c("indexer ties (3 distinct keys)");
  c.distinct_keys = 3;
  c.chunks = decode_at({12'000, 2500, 200'000});  // the last one's keys split over CTAs
  run_case(c);
}

TEST(Indexer, TinyModelPrefillChunk) {
  DSV4_REQUIRE_GPU();
  Case c("indexer synthetic:tiny prefill");
  c.heads = 4;
  c.topk = 16;
  c.chunks = {{0, 40}, {500, 1}, {61, 7}};
  run_case(c);
}

// The scoring kernel takes DeepSeek-V4's 128-dim keys only; other sizes fail before any launch
// (no GPU needed), naming the size.
TEST(Indexer, RejectsKeysOfAnotherSizeByName) {
  std::vector<uint8_t> host_bytes(64);
  IndexerArgs args;
  args.batch.tokens = 1;
  args.q = reinterpret_cast<const uint16_t*>(host_bytes.data());
  args.weights = args.q;
  args.scores = reinterpret_cast<uint16_t*>(host_bytes.data());
  args.indices = reinterpret_cast<int32_t*>(host_bytes.data());
  args.heads = 64;
  args.dim = 96;
  args.ratio = kRatio;
  args.topk = 512;
  args.max_visible = 8;
  args.score_stride = 8;
  args.keys.block_rows = kBlockRows;
  args.keys.row_bytes = int32_t(IndexKeyFormat{96}.bytes());
  try {
    indexer_scores(args, nullptr);
    FAIL() << "96-dim keys were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 96 dims"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv4::cuda
