// The compressor step against cpu::compressor_push + cpu::finish_compressed_entry + the row
// encoders: CSA main (ratio 4, overlap, d 512), CSA indexer (ratio 4, overlap, d 128,
// Hadamard + FP4) and HCA (ratio 128, d 512), three sequences stepping with different chunkings
// (prefill chunks, one-token decode, a sequence at positions near 1M). HCA entries also keep
// their bf16 copies (KvCache::dense_entry_rows), which must hold the stored rows' exact values.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "attention/test_util.h"
#include "core/kv_row.h"
#include "core/rope_frequencies.h"
#include "cpu/compressor.h"
#include "cuda/kernels/attention/compressor.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

constexpr double kBound = 5e-3;

struct Compressor {
  const char* name;
  int32_t layer;
  bool indexer;
  cpu::CompressorShape shape;
  CompressorWeights weights;
  DeviceBuffer<float> ape, norm;
  std::vector<cpu::CompressorState> cpu_state;
  std::vector<std::map<int64_t, std::vector<uint8_t>>> expected;  // [sequence][entry]

  Compressor(const char* name_, int32_t layer_, bool indexer_, cpu::CompressorShape shape_,
             int sequences, std::mt19937_64& rng)
      : name(name_), layer(layer_), indexer(indexer_), shape(shape_) {
    weights.ape.resize(size_t(shape.ratio * shape.width()));
    for (float& x : weights.ape) x = test::normal(rng, 0.5f);
    weights.norm.resize(size_t(shape.dim));
    for (float& x : weights.norm) x = 1.0f + test::normal(rng, 0.1f);
    ape = DeviceBuffer<float>(weights.ape);
    norm = DeviceBuffer<float>(weights.norm);
    cpu_state.resize(size_t(sequences));
    expected.resize(size_t(sequences));
  }
};

TEST(Compressor, MatchesTheCpuOverChunkedSequences) {
  DSV4_REQUIRE_GPU();
  auto rng = test::fresh_rng("Compressor");
  const double norm_eps = 1e-6;
  const cpu::Rope rope(64, 160000.0, 65536, 16.0, 32.0, 1.0);
  DeviceBuffer<float> inv_freq(rope_inverse_frequencies(64, 160000.0, 65536, 16.0, 32.0, 1.0));

  const std::vector<int32_t> starts = {0, 0, 999'740};
  const std::vector<std::vector<int32_t>> schedule = {
      {37, 1, 1, 1, 1, 1, 1, 1, 200, 1, 1, 3, 60},
      {120, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
      {5, 130, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100},
  };
  const auto n_seq = int(starts.size());

  KvCacheConfig config;
  config.layers = {{4, true}, {128, false}};
  config.max_sequences = n_seq;
  config.max_length = 1'000'000;
  config.kv_blocks = 4100;
  config.index_blocks = 3950;
  config.dense_entry_blocks = 128;  // the HCA layer's entries: 1 + 1 + 123 blocks
  KvCache cache(config);
  std::vector<int32_t> slots, positions = starts;
  for (int s = 0; s < n_seq; ++s) slots.push_back(cache.admit(nullptr));

  std::vector<std::unique_ptr<Compressor>> compressors;
  compressors.push_back(std::make_unique<Compressor>(
      "CSA main", 0, false, cpu::CompressorShape{4, 512, true}, n_seq, rng));
  compressors.push_back(std::make_unique<Compressor>(
      "CSA indexer", 0, true, cpu::CompressorShape{4, 128, true}, n_seq, rng));
  compressors.push_back(std::make_unique<Compressor>(
      "HCA main", 1, false, cpu::CompressorShape{128, 512, false}, n_seq, rng));

  for (size_t step = 0; step < schedule[0].size(); ++step) {
    std::vector<test::Chunk> chunks;
    for (int s = 0; s < n_seq; ++s) {
      const int32_t count = schedule[size_t(s)][step];
      chunks.push_back({slots[size_t(s)], positions[size_t(s)], count});
      cache.reserve(slots[size_t(s)], positions[size_t(s)] + count, nullptr);
    }
    test::DeviceBatch batch(chunks);
    const int32_t T = batch.tokens();
    for (auto& c : compressors) {
      const int64_t width = c->shape.width();
      std::vector<float> kv(size_t(T * width)), gate(kv.size());
      for (float& x : kv) x = test::normal(rng);
      for (float& x : gate) x = test::normal(rng);
      DeviceBuffer<float> d_kv(kv), d_gate(gate);
      CompressorArgs args;
      args.batch = batch.view();
      args.kv = d_kv.data();
      args.gate = d_gate.data();
      args.ape = c->ape.data();
      args.norm_weight = c->norm.data();
      args.rope_inv_freq = inv_freq.data();
      args.state = cache.compressor_state(c->layer, c->indexer);
      args.out = c->indexer ? cache.index_key_rows(c->layer) : cache.entry_rows(c->layer);
      if (!c->indexer) args.dense_out = cache.dense_entry_rows(c->layer);
      args.kind = c->indexer ? CompressedKind::kIndexKey : CompressedKind::kMainKv;
      args.ratio = int32_t(c->shape.ratio);
      args.dim = int32_t(c->shape.dim);
      args.rope_dim = 64;
      args.overlap = c->shape.overlap;
      args.norm_eps = float(norm_eps);
      compressor_step(args, nullptr);
      DSV4_CUDA_CHECK(cudaDeviceSynchronize());

      std::vector<float> entry(size_t(c->shape.dim));
      for (int32_t t = 0; t < T; ++t) {
        const int s =
            int(std::find(slots.begin(), slots.end(), batch.slot[size_t(t)]) - slots.begin());
        const int32_t pos = batch.position[size_t(t)];
        if (!cpu::compressor_push(c->cpu_state[size_t(s)], c->shape, c->weights, pos,
                                  kv.data() + t * width, gate.data() + t * width, entry.data())) {
          continue;
        }
        const auto kind = c->indexer ? cpu::EntryKind::kIndexKey : cpu::EntryKind::kMainKv;
        cpu::finish_compressed_entry(entry.data(), c->shape, c->weights, rope, pos / c->shape.ratio,
                                     kind, norm_eps, Numerics::kOfficial);
        std::vector<uint8_t> bytes(size_t(args.out.row_bytes));
        if (c->indexer) {
          IndexKeyFormat{size_t(c->shape.dim)}.encode(entry.data(), bytes.data());
        } else {
          KvRowFormat{size_t(c->shape.dim), 64}.encode(entry.data(), bytes.data());
        }
        c->expected[size_t(s)][pos / c->shape.ratio] = bytes;
      }
    }
    for (int s = 0; s < n_seq; ++s) positions[size_t(s)] += schedule[size_t(s)][step];
  }

  for (auto& c : compressors) {
    const PagedRowsView view =
        c->indexer ? cache.index_key_rows(c->layer) : cache.entry_rows(c->layer);
    std::vector<int32_t> row_slots, indices;
    std::vector<uint8_t> want;
    for (int s = 0; s < n_seq; ++s) {
      for (const auto& [entry, bytes] : c->expected[size_t(s)]) {
        row_slots.push_back(slots[size_t(s)]);
        indices.push_back(int32_t(entry));
        want.insert(want.end(), bytes.begin(), bytes.end());
      }
    }
    ASSERT_FALSE(indices.empty()) << c->name;
    DeviceBuffer<int32_t> d_slots(row_slots), d_indices(indices);
    auto got_rows = test::poisoned<uint8_t>(want.size());
    gather_rows(view, d_slots.data(), d_indices.data(), got_rows.data(), int32_t(indices.size()),
                nullptr);
    const std::vector<uint8_t> got = got_rows.download();
    const auto row_bytes = size_t(view.row_bytes);
    const size_t dim = size_t(c->shape.dim);
    std::vector<float> got_values(indices.size() * dim), want_values(got_values.size());
    size_t identical = 0;
    for (size_t i = 0; i < indices.size(); ++i) {
      const uint8_t* g = got.data() + i * row_bytes;
      const uint8_t* w = want.data() + i * row_bytes;
      identical += std::equal(g, g + row_bytes, w);
      if (c->indexer) {
        IndexKeyFormat{dim}.decode(g, got_values.data() + i * dim);
        IndexKeyFormat{dim}.decode(w, want_values.data() + i * dim);
      } else {
        KvRowFormat{dim, 64}.decode(g, got_values.data() + i * dim);
        KvRowFormat{dim, 64}.decode(w, want_values.data() + i * dim);
      }
    }
    const double error = test::relative_error(got_values, want_values);
    std::printf(
        "[Compressor] %s: %zu entries, %zu bit-identical rows, relative error %.3g "
        "(bound %.0e)\n",
        c->name, indices.size(), identical, error, kBound);
    EXPECT_TRUE(test::all_finite(got_values)) << c->name;
    EXPECT_LE(error, kBound) << c->name;

    const PagedRowsView copies = cache.dense_entry_rows(c->layer);
    if (c->indexer || !copies.pool) continue;
    auto copy_rows = test::poisoned<uint8_t>(indices.size() * dim * 2);
    gather_rows(copies, d_slots.data(), d_indices.data(), copy_rows.data(), int32_t(indices.size()),
                nullptr);
    const std::vector<uint8_t> copy_bytes = copy_rows.download();
    std::vector<float> copy_values(got_values.size());
    for (size_t i = 0; i < copy_values.size(); ++i) {
      uint16_t bits;
      std::memcpy(&bits, copy_bytes.data() + 2 * i, 2);
      copy_values[i] = bf16_to_float(bits);
    }
    std::printf("[Compressor] %s: bf16 copies of %zu entries\n", c->name, indices.size());
    EXPECT_EQ(copy_values, got_values) << c->name << ": bf16 copies differ from the stored rows";
  }
}

}  // namespace
}  // namespace dsv4::cuda
