// The paged KV cache: admission, growth, release, clear errors when full, row paging, the bf16
// copies of HCA entries and the compressor state reset.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "attention/test_util.h"
#include "core/error.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "gpu_test_support.h"
#include "model/synthetic.h"

namespace dsv4::cuda {
namespace {

KvCacheConfig small_config(int64_t kv_blocks, int64_t index_blocks) {
  KvCacheConfig c;
  c.layers = {{0, false}, {4, true}, {128, false}};
  c.max_sequences = 3;
  c.max_length = 4096;
  c.kv_blocks = kv_blocks;
  c.index_blocks = index_blocks;
  return c;
}

template <typename F>
std::string error_of(const F& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Host only. synthetic:tiny: windows of 32 in 6 layers, CSA (ratio 4) at 2 and 4, HCA (ratio 16)
// at 3 and 5. At 1000 tokens a slot needs 6 window blocks, 4 entry and 4 index-key blocks per
// CSA layer (250 entries) and 1 entry block per HCA layer (63 entries), and as many copies.
TEST(KvCacheConfig, SizesPoolsForEverySlotAtMaxLengthWithCopiesOnlyForHcaEntries) {
  const ModelConfig model = synthetic_config("tiny");
  const KvCacheConfig with = kv_cache_config_every_slot_full(model, 3, 1000, 64, true);
  EXPECT_EQ(with.kv_blocks, 3 * (6 + 2 * 4 + 2 * 1));
  EXPECT_EQ(with.index_blocks, 3 * (2 * 4));
  EXPECT_EQ(with.dense_entry_blocks, 3 * (2 * 1));
  EXPECT_EQ(with.block_rows, 64);
  EXPECT_EQ(with.max_length, 1000);
  const KvCacheConfig without = kv_cache_config_every_slot_full(model, 3, 1000, 64, false);
  EXPECT_EQ(without.kv_blocks, with.kv_blocks);
  EXPECT_EQ(without.dense_entry_blocks, 0);
}

TEST(KvCache, KeepsZeroedBf16EntryCopiesForHcaLayersOnly) {
  DSV4_REQUIRE_GPU();
  KvCacheConfig config = small_config(200, 200);
  config.max_length = 16384;
  config.dense_entry_blocks = 3;
  KvCache cache(config);
  EXPECT_EQ(cache.dense_entry_rows(0).pool, nullptr) << "window layer";
  EXPECT_EQ(cache.dense_entry_rows(1).pool, nullptr) << "CSA layer";
  const PagedRowsView copies = cache.dense_entry_rows(2);
  ASSERT_NE(copies.pool, nullptr);
  EXPECT_EQ(copies.row_bytes, 1024);
  EXPECT_EQ(cache.dense_entry_pool_rows(), 3 * 64);

  const int32_t a = cache.admit(nullptr), b = cache.admit(nullptr);
  cache.reserve(a, 4096, nullptr);  // 32 HCA entries: one block
  EXPECT_EQ(cache.free_dense_entry_blocks(), 2);
  cache.reserve(b, 128 * 64 + 128, nullptr);  // 65 HCA entries: two blocks
  EXPECT_EQ(cache.free_dense_entry_blocks(), 0);
  // Every copy row reads as zeros until written (masked rows the attention reads must be finite).
  std::vector<int32_t> slots(65, b), indices(65);
  for (int32_t i = 0; i < 65; ++i) indices[size_t(i)] = i;
  DeviceBuffer<int32_t> d_slots(slots), d_indices(indices);
  auto rows = test::poisoned<uint8_t>(65 * 1024);
  gather_rows(copies, d_slots.data(), d_indices.data(), rows.data(), 65, nullptr);
  const std::vector<uint8_t> bytes = rows.download();
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](uint8_t v) { return v == 0; }));

  const int32_t c = cache.admit(nullptr);
  const std::string full = error_of([&] { cache.reserve(c, 200, nullptr); });
  EXPECT_NE(full.find("bf16 entry blocks"), std::string::npos) << full;
  cache.release(b);
  EXPECT_EQ(cache.free_dense_entry_blocks(), 2);
  cache.reserve(c, 200, nullptr);
  EXPECT_EQ(cache.free_dense_entry_blocks(), 1);
}

TEST(KvCache, AdmitsReservesReleasesAndReportsFullPools) {
  DSV4_REQUIRE_GPU();
  // Per sequence: 2 window blocks per layer (6); at 4096 tokens 1024 CSA entries (16 blocks,
  // and 16 index-key blocks) and 32 HCA entries (1 block).
  KvCache cache(small_config(40, 20));
  EXPECT_EQ(cache.kv_row_bytes(), 584);
  EXPECT_EQ(cache.index_key_bytes(), 68);
  const int32_t a = cache.admit(nullptr);
  EXPECT_EQ(cache.free_kv_blocks(), 34);
  cache.reserve(a, 4096, nullptr);
  EXPECT_EQ(cache.free_kv_blocks(), 17);
  EXPECT_EQ(cache.free_index_blocks(), 4);

  const int32_t b = cache.admit(nullptr);
  EXPECT_EQ(cache.free_kv_blocks(), 11);
  const std::string full = error_of([&] { cache.reserve(b, 4096, nullptr); });
  EXPECT_NE(full.find("KV cache full"), std::string::npos) << full;
  EXPECT_EQ(cache.free_kv_blocks(), 11) << "a failed reserve must leave the cache unchanged";
  EXPECT_EQ(cache.free_index_blocks(), 4);
  EXPECT_EQ(cache.reserved_length(b), 0);

  cache.reserve(b, 1000, nullptr);  // 250 CSA entries: 4 blocks; 7 HCA entries: 1 block
  EXPECT_EQ(cache.free_kv_blocks(), 6);
  EXPECT_EQ(cache.free_index_blocks(), 0);
  const std::string index_full = error_of([&] { cache.reserve(b, 1100, nullptr); });
  EXPECT_NE(index_full.find("index-key"), std::string::npos) << index_full;
  EXPECT_EQ(cache.free_kv_blocks(), 6);
  EXPECT_NE(error_of([&] { cache.reserve(b, 5000, nullptr); }).find("max_length"),
            std::string::npos);

  const int32_t c = cache.admit(nullptr);
  EXPECT_EQ(cache.free_kv_blocks(), 0);
  EXPECT_NE(error_of([&] { cache.admit(nullptr); }).find("slots"), std::string::npos);
  cache.release(a);
  EXPECT_EQ(cache.free_kv_blocks(), 23);
  EXPECT_EQ(cache.free_index_blocks(), 16);
  EXPECT_NE(error_of([&] { cache.reserve(a, 10, nullptr); }).find("not an admitted"),
            std::string::npos);
  cache.release(b);
  cache.release(c);
  EXPECT_EQ(cache.free_kv_blocks(), 40);
  EXPECT_EQ(cache.free_index_blocks(), 20);
  EXPECT_EQ(cache.free_slots(), 3);

  KvCache tiny(small_config(5, 0));
  const std::string no_window = error_of([&] { tiny.admit(nullptr); });
  EXPECT_NE(no_window.find("needs 6 KV blocks"), std::string::npos) << no_window;
  EXPECT_EQ(tiny.free_slots(), 3);
  DSV4_CUDA_CHECK(cudaDeviceSynchronize());
}

TEST(KvCache, PagesRowsOfEverySequenceWithoutAliasing) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("KvCache.Paging");
  KvCache cache(small_config(60, 40));
  // Admit, release and re-admit so that block tables are not the identity.
  const int32_t first = cache.admit(nullptr);
  cache.reserve(first, 700, nullptr);
  const int32_t s0 = cache.admit(nullptr);
  cache.release(first);
  const int32_t s1 = cache.admit(nullptr);
  const int32_t s2 = cache.admit(nullptr);
  for (int32_t s : {s0, s1, s2}) cache.reserve(s, 2000 + 300 * s, nullptr);

  struct Kind {
    PagedRowsView view;
    int32_t rows;  // rows per sequence to write
  };
  const Kind kinds[] = {{cache.window_rows(1), 128},
                        {cache.entry_rows(1), 500},
                        {cache.index_key_rows(1), 500},
                        {cache.entry_rows(2), 15},
                        {cache.window_rows(0), 128}};
  for (const Kind& kind : kinds) {
    std::vector<int32_t> slots, indices;
    for (int32_t s : {s0, s1, s2}) {
      for (int32_t r = 0; r < kind.rows; ++r) {
        slots.push_back(s);
        indices.push_back(r);
      }
    }
    const size_t bytes = slots.size() * size_t(kind.view.row_bytes);
    std::vector<uint8_t> rows(bytes);
    for (uint8_t& x : rows) x = uint8_t(rng());
    DeviceBuffer<int32_t> d_slots(slots), d_indices(indices);
    DeviceBuffer<uint8_t> d_rows(rows);
    scatter_rows(kind.view, d_slots.data(), d_indices.data(), d_rows.data(), int32_t(slots.size()),
                 nullptr);
    auto back = test::poisoned<uint8_t>(bytes);
    gather_rows(kind.view, d_slots.data(), d_indices.data(), back.data(), int32_t(slots.size()),
                nullptr);
    EXPECT_EQ(back.download(), rows) << "row bytes " << kind.view.row_bytes;
  }
}

TEST(KvCache, AdmissionResetsTheCompressorState) {
  DSV4_REQUIRE_GPU();
  KvCache cache(small_config(40, 20));
  const int32_t s = cache.admit(nullptr);
  for (int32_t layer : {1, 2}) {
    for (bool indexer : {false, true}) {
      if (indexer && layer == 2) continue;
      const CompressorStateView v = cache.compressor_state(layer, indexer);
      const size_t n = size_t(v.buffers) *
                       size_t(cache.config().layers[size_t(layer)].compress_ratio) *
                       size_t(cache.compressor_width(layer, indexer));
      std::vector<float> kv(n), gate(n);
      DSV4_CUDA_CHECK(
          cudaMemcpy(kv.data(), v.kv + s * v.sequence_stride, n * 4, cudaMemcpyDeviceToHost));
      DSV4_CUDA_CHECK(
          cudaMemcpy(gate.data(), v.gate + s * v.sequence_stride, n * 4, cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(kv[i], 0.0f);
        ASSERT_TRUE(std::isinf(gate[i]) && gate[i] < 0);
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::cuda
