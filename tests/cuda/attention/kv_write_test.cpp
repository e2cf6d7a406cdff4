// KV row writes: bytes bit-identical to KvRowFormat::encode, ring slot = position % window,
// and the prefill commit of each chunk's last `window` rows.
#include <gtest/gtest.h>

#include <cstring>

#include "attention/test_util.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/kv_write.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

// A bf16 row whose 64-value blocks span many magnitudes: tiny blocks (amax below the 1e-4
// scale floor), e4m3 subnormals, zeros, large values.
std::vector<float> varied_row(std::mt19937_64& rng, int dim) {
  std::vector<float> row(static_cast<size_t>(dim));
  for (int b = 0; b < dim / 64; ++b) {
    const int kind = int(rng() % 6);
    const float magnitude = kind == 0 ? 0.0f : std::ldexp(1.0f, int(rng() % 40) - 30);
    for (int i = 0; i < 64; ++i)
      row[size_t(b * 64 + i)] = round_bf16(test::normal(rng) * magnitude);
  }
  return row;
}

struct WriteCase {
  int dim, rope, window;
  std::vector<test::Chunk> chunks;  // slot fields index the admitted sequences
};

void run_write_case(const WriteCase& wc, bool decode_ring, std::mt19937_64& rng) {
  KvCacheConfig config;
  config.head_dim = wc.dim;
  config.rope_dim = wc.rope;
  config.window = wc.window;
  config.layers = {{0, false}};
  config.max_sequences = int32_t(wc.chunks.size());
  config.max_length = 1 << 21;
  config.kv_blocks = int64_t(wc.chunks.size()) * ((wc.window + 63) / 64);
  KvCache cache(config);
  std::vector<test::Chunk> chunks = wc.chunks;
  for (test::Chunk& c : chunks) c.slot = cache.admit(nullptr);
  test::DeviceBatch batch(chunks);
  const int32_t T = batch.tokens();
  const KvRowFormat format{size_t(wc.dim), size_t(wc.rope)};
  const size_t row_bytes = format.bytes();

  std::vector<float> rows;
  std::vector<uint8_t> expected(size_t(T) * row_bytes);
  for (int32_t t = 0; t < T; ++t) {
    const std::vector<float> row = varied_row(rng, wc.dim);
    rows.insert(rows.end(), row.begin(), row.end());
    format.encode(row.data(), expected.data() + size_t(t) * row_bytes);
  }
  DeviceBuffer<uint16_t> kv(test::to_bf16_bits(rows));
  auto chunk_rows = test::poisoned<uint8_t>(expected.size());
  KvWriteArgs args;
  args.batch = batch.view();
  args.kv = kv.data();
  args.head_dim = wc.dim;
  args.rope_dim = wc.rope;
  args.chunk_rows = chunk_rows.data();
  args.window = wc.window;
  if (decode_ring) args.ring = cache.window_rows(0);
  write_kv_rows(args, nullptr);
  if (!decode_ring) {
    commit_window_rows(batch.view(), chunk_rows.data(), cache.window_rows(0), wc.window, nullptr);
  }
  EXPECT_EQ(chunk_rows.download(), expected);

  // Ring rows: the last `window` positions of every chunk.
  std::vector<int32_t> slots, indices;
  std::vector<uint8_t> want;
  for (int32_t t = 0; t < T; ++t) {
    const int32_t last = batch.position[size_t(batch.chunk_end[size_t(t)] - 1)];
    if (batch.position[size_t(t)] <= last - wc.window) continue;
    slots.push_back(batch.slot[size_t(t)]);
    indices.push_back(batch.position[size_t(t)] % wc.window);
    want.insert(want.end(), expected.begin() + std::ptrdiff_t(size_t(t) * row_bytes),
                expected.begin() + std::ptrdiff_t(size_t(t + 1) * row_bytes));
  }
  DeviceBuffer<int32_t> d_slots(slots), d_indices(indices);
  auto got = test::poisoned<uint8_t>(want.size());
  gather_rows(cache.window_rows(0), d_slots.data(), d_indices.data(), got.data(),
              int32_t(slots.size()), nullptr);
  EXPECT_EQ(got.download(), want);
  std::printf("[KvWrite] d=%d rd=%d: %d rows bit-identical to KvRowFormat::encode (%zu bytes)\n",
              wc.dim, wc.rope, T, row_bytes);
}

TEST(KvWrite, DecodeRowsAreBitIdenticalToKvRowFormatAndLandInTheRing) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("KvWrite.Decode");
  std::vector<test::Chunk> chunks;
  for (int32_t pos : {0, 1, 127, 128, 129, 4097, 999'999, 1'000'000, 1'048'575}) {
    chunks.push_back({0, pos, 1});
  }
  run_write_case({512, 64, 128, chunks}, true, rng);
  run_write_case({128, 64, 32, chunks}, true, rng);  // synthetic:tiny
  run_write_case({192, 64, 64, chunks}, true, rng);  // synthetic:small
}

TEST(KvWrite, PrefillChunksCommitTheirLastWindowRows) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("KvWrite.Prefill");
  run_write_case({512, 64, 128, {{0, 50, 300}, {0, 0, 37}, {0, 5000, 1}, {0, 70, 128}}}, false,
                 rng);
}

}  // namespace
}  // namespace dsv4::cuda
