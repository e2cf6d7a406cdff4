// Sparse attention with sink against cpu::attend_head over the rows src/cpu/attention.cpp
// gathers (window, then compressed entries), rows decoded from the same KvRowFormat bytes.
// Flash (64) and Pro (128) heads at d = 512, window-only / CSA list / HCA, empty and full
// windows, -1 padding, positions up to 1M, prefill chunks; HCA entries also from their bf16
// copies (KvCache::dense_entry_rows); a decode timing printout.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "attention/test_util.h"
#include "core/kv_row.h"
#include "core/thread_pool.h"
#include "cpu/sparse_attention.h"
#include "cuda/kernels/attention/dense_rows_layout.h"
#include "cuda/kernels/attention/kv_cache.h"
#include "cuda/kernels/attention/kv_write.h"
#include "cuda/kernels/attention/sparse_attention.h"
#include "gpu_test_support.h"

namespace dsv4::cuda {
namespace {

// Issue 5's bound. Unsplit, the kernels follow cpu::attend_head's blocks and land within 2e-4;
// split-KV rounds each split's P at its own running maximum, a second independent bf16
// rounding of most P values: 0.7-1.6e-3 measured over eight runs (L2 over the outputs, which
// concentrates near the rounding's rms, about 2^-9).
constexpr double kBound = 2e-3;

struct Scenario {
  Scenario(const char* name_, int heads_, int dim_ = 512, int rope_ = 64, int window_ = 128)
      : name(name_), heads(heads_), dim(dim_), rope(rope_), window(window_) {}
  const char* name;
  int heads;
  int dim, rope, window;
  CompressedSource source = CompressedSource::kNone;
  int ratio = 0;                                    // kAll: entries per (p + 1) / ratio; kList: 4
  int list_len = 0;                                 // kList
  double pad_fraction = 0.0;                        // kList: share of chosen entries replaced by -1
  std::vector<std::pair<int32_t, int32_t>> chunks;  // (start, count), one per sequence
  bool commit = false;
};

// Random KV rows: nope ~ N(0, 1) (quantized by the encoder), rope bf16.
struct RowFactory {
  KvRowFormat format;
  std::mt19937_64* rng;
  std::vector<uint8_t> make(std::vector<float>& decoded) const {
    std::vector<float> row(format.head_dim);
    for (size_t i = 0; i < row.size(); ++i) {
      row[i] = i < format.nope_dim() ? test::normal(*rng) : round_bf16(test::normal(*rng));
    }
    std::vector<uint8_t> bytes(format.bytes());
    format.encode(row.data(), bytes.data());
    decoded.resize(format.head_dim);
    format.decode(bytes.data(), decoded.data());
    return bytes;
  }
};

int32_t sequence_of(const std::vector<test::Chunk>& chunks, int32_t slot) {
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].slot == slot) return int32_t(i);
  }
  return -1;
}

void run_scenario(const Scenario& sc) {
  auto rng = test::fresh_rng(sc.name);
  const int H = sc.heads, d = sc.dim, W = sc.window;
  const int ratio = sc.source == CompressedSource::kList ? 4 : sc.ratio;
  const auto n_seq = int32_t(sc.chunks.size());
  int32_t max_end = 1;
  for (const auto& [start, count] : sc.chunks) max_end = std::max(max_end, start + count);

  KvCacheConfig config;
  config.head_dim = d;
  config.rope_dim = sc.rope;
  config.window = W;
  config.layers = {{sc.source == CompressedSource::kNone ? 0 : ratio, false}};
  config.max_sequences = n_seq;
  config.max_length = max_end;
  const int64_t entry_blocks = ratio > 0 ? (max_end / ratio + 63) / 64 : 0;
  config.kv_blocks = n_seq * ((W + 63) / 64 + entry_blocks);
  // HCA entries' bf16 copies, where the sm_90 dense kernel can read them.
  const bool entry_copies = sc.source == CompressedSource::kAll && d == 512 && sc.rope == 64 &&
                            H % 64 == 0 && W % 64 == 0;
  config.dense_entry_blocks = entry_copies ? n_seq * entry_blocks : 0;
  KvCache cache(config);
  const RowFactory factory{{size_t(d), size_t(sc.rope)}, &rng};
  const auto row_bytes = size_t(cache.kv_row_bytes());

  std::vector<test::Chunk> chunks;
  for (const auto& [start, count] : sc.chunks) {
    const int32_t slot = cache.admit(nullptr);
    cache.reserve(slot, start + count, nullptr);
    chunks.push_back({slot, start, count});
  }
  test::DeviceBatch batch(chunks);
  const int32_t T = batch.tokens();

  // Host truth: decoded rows by (sequence, position) and (sequence, entry).
  using RowMap = std::map<int64_t, std::vector<float>>;
  std::vector<RowMap> window_rows(static_cast<size_t>(n_seq)), entry_rows(window_rows.size());
  std::vector<int32_t> ring_slots, ring_indices, entry_slots, entry_indices;
  std::vector<uint8_t> ring_bytes, entry_bytes, chunk_bytes, entry_copy_bytes;
  const auto add_entry = [&](int32_t seq, int64_t e) {
    auto& rows = entry_rows[size_t(seq)];
    if (rows.count(e)) return;
    const std::vector<uint8_t> bytes = factory.make(rows[e]);
    entry_bytes.insert(entry_bytes.end(), bytes.begin(), bytes.end());
    for (float v : rows[e]) {
      const uint16_t bits = float_to_bf16(v);  // exact: a stored value has 4 significant bits
      entry_copy_bytes.push_back(uint8_t(bits & 0xff));
      entry_copy_bytes.push_back(uint8_t(bits >> 8));
    }
    entry_slots.push_back(chunks[size_t(seq)].slot);
    entry_indices.push_back(int32_t(e));
  };
  for (int32_t s = 0; s < n_seq; ++s) {
    const test::Chunk& c = chunks[size_t(s)];
    for (int32_t p = std::max(0, c.start - W + 1); p < c.start; ++p) {
      const std::vector<uint8_t> bytes = factory.make(window_rows[size_t(s)][p]);
      ring_bytes.insert(ring_bytes.end(), bytes.begin(), bytes.end());
      ring_slots.push_back(c.slot);
      ring_indices.push_back(p % W);
    }
    for (int32_t p = c.start; p < c.start + c.count; ++p) {
      const std::vector<uint8_t> bytes = factory.make(window_rows[size_t(s)][p]);
      chunk_bytes.insert(chunk_bytes.end(), bytes.begin(), bytes.end());
    }
    if (sc.source == CompressedSource::kAll) {
      for (int64_t e = 0; e < (c.start + c.count) / ratio; ++e) add_entry(s, e);
    }
  }
  // CSA lists: distinct random entries < (p + 1) / 4, some replaced by -1, shuffled.
  std::vector<int32_t> list;
  if (sc.source == CompressedSource::kList) {
    list.assign(size_t(T) * size_t(sc.list_len), -1);
    for (int32_t t = 0; t < T; ++t) {
      const int32_t seq = sequence_of(chunks, batch.slot[size_t(t)]);
      const int32_t visible = (batch.position[size_t(t)] + 1) / ratio;
      std::set<int32_t> chosen;
      while (int32_t(chosen.size()) < std::min(sc.list_len, visible)) {
        chosen.insert(int32_t(rng() % uint64_t(visible)));
      }
      int32_t* row = list.data() + size_t(t) * size_t(sc.list_len);
      int32_t i = 0;
      for (int32_t e : chosen) {
        const bool pad = std::uniform_real_distribution<double>(0, 1)(rng) < sc.pad_fraction;
        row[i++] = pad ? -1 : e;
        if (!pad) add_entry(seq, e);
      }
      std::shuffle(row, row + sc.list_len, rng);
    }
  }
  const auto scatter = [&](const PagedRowsView& view, const std::vector<int32_t>& slots,
                           const std::vector<int32_t>& indices, const std::vector<uint8_t>& bytes) {
    if (slots.empty()) return;
    DeviceBuffer<int32_t> d_slots(slots), d_indices(indices);
    DeviceBuffer<uint8_t> d_bytes(bytes);
    scatter_rows(view, d_slots.data(), d_indices.data(), d_bytes.data(), int32_t(slots.size()),
                 nullptr);
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
  };
  scatter(cache.window_rows(0), ring_slots, ring_indices, ring_bytes);
  if (sc.source != CompressedSource::kNone) {
    scatter(cache.entry_rows(0), entry_slots, entry_indices, entry_bytes);
  }
  if (entry_copies)
    scatter(cache.dense_entry_rows(0), entry_slots, entry_indices, entry_copy_bytes);

  const std::vector<float> q = test::random_bf16_values(rng, size_t(T) * H * d);
  std::vector<float> sink(static_cast<size_t>(H));
  for (float& s : sink) s = test::normal(rng, 2.0f);
  DeviceBuffer<uint16_t> d_q(test::to_bf16_bits(q));
  DeviceBuffer<float> d_sink(sink);
  DeviceBuffer<uint8_t> d_chunk(chunk_bytes);
  DeviceBuffer<int32_t> d_list(list.empty() ? std::vector<int32_t>{-1} : list);
  SparseAttentionArgs args;
  args.batch = batch.view();
  args.q = d_q.data();
  args.sink = d_sink.data();
  args.heads = H;
  args.head_dim = d;
  args.rope_dim = sc.rope;
  args.scale = float(1.0 / std::sqrt(double(d)));
  args.window = W;
  args.chunk_rows = d_chunk.data();
  args.ring = cache.window_rows(0);
  args.source = sc.source;
  if (sc.source != CompressedSource::kNone) args.entries = cache.entry_rows(0);
  args.list = d_list.data();
  args.list_stride = sc.list_len;
  args.list_len = sc.list_len;
  args.ratio = ratio;
  args.max_rows = W + (sc.source == CompressedSource::kList  ? sc.list_len
                       : sc.source == CompressedSource::kAll ? max_end / ratio
                                                             : 0);
  DeviceBuffer<float> workspace(sparse_attention_workspace_bytes(T, H, args.max_rows) /
                                sizeof(float));
  args.workspace = workspace.data();
  args.workspace_bytes = workspace.size() * sizeof(float);

  // Each kernel the arguments can run on: the sm_90 one with as many splits as it likes, at most
  // two, and none, where it applies, and the portable one; every output freshly poisoned.
  struct Variant {
    std::string name;
    SparseAttentionArgs args;
  };
  std::vector<Variant> variants;
  if (sparse_attention_uses_sm90(args)) {
    variants.push_back({"sm90 split-KV", args});
    Variant whole{"sm90", args};
    whole.args.max_splits = 1;
    variants.push_back(whole);
    Variant two_splits{"sm90 two splits at most", args};
    two_splits.args.max_splits = 2;
    variants.push_back(two_splits);
  }
  // Dense rows (the prefill path), where the chunks' regions stay small: every row a chunk can
  // read dequantized into bf16 first, split as the plan likes. The rows start poisoned (NaN): a
  // masked row that a bulk copy reads but the pass never wrote would turn the output into NaN.
  const int32_t entry_ratio = sc.source == CompressedSource::kNone ? 0 : ratio;
  std::vector<int32_t> dense_base(batch.position.size());
  const int64_t dense_rows = dense_rows_layout(batch.position, batch.chunk_begin, batch.chunk_end,
                                               W, entry_ratio, dense_base);
  DeviceBuffer<uint16_t> d_dense_rows;
  DeviceBuffer<int32_t> d_dense_base;
  if (sparse_attention_uses_sm90(args) && dense_rows * d <= (int64_t(1) << 26)) {
    d_dense_rows = test::poisoned<uint16_t>(size_t(dense_rows) * size_t(d));
    d_dense_base = DeviceBuffer<int32_t>(dense_base);
    Variant dense{"sm90 dense rows", args};
    dense.args.dense = {d_dense_rows.data(), d_dense_base.data(), entry_ratio, dense_rows, {}, 0};
    variants.push_back(dense);
  }
  // HCA decode's path: regions of window rows only, the entries from their bf16 copies; split
  // as the plan likes and unsplit.
  std::vector<int32_t> window_base(batch.position.size());
  const int64_t window_rows_count =
      dense_rows_layout(batch.position, batch.chunk_begin, batch.chunk_end, W, 0, window_base);
  DeviceBuffer<uint16_t> d_window_rows;
  DeviceBuffer<int32_t> d_window_base;
  if (entry_copies && sparse_attention_uses_sm90(args)) {
    d_window_rows = test::poisoned<uint16_t>(size_t(window_rows_count) * size_t(d));
    d_window_base = DeviceBuffer<int32_t>(window_base);
    Variant pooled{"sm90 dense rows, bf16 entry copies", args};
    pooled.args.dense = {
        d_window_rows.data(), d_window_base.data(),      ratio,
        window_rows_count,    cache.dense_entry_rows(0), cache.dense_entry_pool_rows()};
    variants.push_back(pooled);
    Variant unsplit{"sm90 dense rows, bf16 entry copies, unsplit", pooled.args};
    unsplit.args.max_splits = 1;
    variants.push_back(unsplit);
  }
  Variant portable{"portable", args};
  portable.args.portable = true;
  variants.push_back(portable);
  std::vector<std::vector<float>> outputs;
  for (Variant& v : variants) {
    auto out = test::poisoned<uint16_t>(size_t(T) * H * d);
    v.args.out = out.data();
    sparse_attention(v.args, nullptr);
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> got;
    for (uint16_t bits : out.download()) got.push_back(bf16_to_float(bits));
    outputs.push_back(std::move(got));
  }
  const std::vector<float>& got = outputs.front();

  // The CPU: the reference's list (W window entries, null where the sequence is shorter, then
  // the compressed entries, null for -1), attend_head per head.
  std::vector<float> want(got.size());
  std::vector<int64_t> row_counts(static_cast<size_t>(T));
  ThreadPool::global().parallel_for(size_t(T), 1, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const int32_t seq = sequence_of(chunks, batch.slot[t]);
      const int32_t p = batch.position[t];
      std::vector<const float*> rows(size_t(W), nullptr);
      const int32_t oldest = std::max(0, p - W + 1);
      for (int32_t k = oldest; k <= p; ++k) {
        rows[size_t(k - oldest)] = window_rows[size_t(seq)].at(k).data();
      }
      if (sc.source == CompressedSource::kAll) {
        for (int64_t e = 0; e < (p + 1) / ratio; ++e) {
          rows.push_back(entry_rows[size_t(seq)].at(e).data());
        }
      } else if (sc.source == CompressedSource::kList) {
        for (int32_t i = 0; i < sc.list_len; ++i) {
          const int32_t e = list[t * size_t(sc.list_len) + size_t(i)];
          rows.push_back(e >= 0 ? entry_rows[size_t(seq)].at(e).data() : nullptr);
        }
      }
      row_counts[t] = int64_t(rows.size());
      for (int h = 0; h < H; ++h) {
        const size_t at = (t * size_t(H) + size_t(h)) * size_t(d);
        cpu::attend_head(q.data() + at, rows, d, args.scale, sink[size_t(h)], Numerics::kOfficial,
                         want.data() + at);
      }
    }
  });
  int64_t most_rows = 0;
  for (int64_t r : row_counts) most_rows = std::max(most_rows, r);
  for (size_t v = 0; v < variants.size(); ++v) {
    ASSERT_TRUE(test::all_finite(outputs[v]))
        << sc.name << ", " << variants[v].name << ": non-finite output (poison survived?)";
    const double error = test::relative_error(outputs[v], want);
    std::printf("[%s, %s] %d tokens, %d heads, up to %lld rows: relative error %.3g (bound %.0e)\n",
                sc.name, variants[v].name.c_str(), T, H, static_cast<long long>(most_rows), error,
                kBound);
    EXPECT_LE(error, kBound) << sc.name << ", " << variants[v].name;
  }

  if (sc.commit) {
    commit_window_rows(batch.view(), d_chunk.data(), cache.window_rows(0), W, nullptr);
    std::vector<int32_t> slots, indices;
    std::vector<uint8_t> expected;
    for (int32_t t = 0; t < T; ++t) {
      const int32_t last = batch.position[size_t(batch.chunk_end[size_t(t)] - 1)];
      if (batch.position[size_t(t)] <= last - W) continue;
      slots.push_back(batch.slot[size_t(t)]);
      indices.push_back(batch.position[size_t(t)] % W);
      expected.insert(expected.end(), chunk_bytes.begin() + std::ptrdiff_t(size_t(t) * row_bytes),
                      chunk_bytes.begin() + std::ptrdiff_t(size_t(t + 1) * row_bytes));
    }
    DeviceBuffer<int32_t> d_slots(slots), d_indices(indices);
    auto back = test::poisoned<uint8_t>(expected.size());
    gather_rows(cache.window_rows(0), d_slots.data(), d_indices.data(), back.data(),
                int32_t(slots.size()), nullptr);
    EXPECT_EQ(back.download(), expected) << sc.name << ": ring after commit";
  }
}

std::vector<std::pair<int32_t, int32_t>> decode_at(std::initializer_list<int32_t> positions) {
  std::vector<std::pair<int32_t, int32_t>> chunks;
  for (int32_t p : positions) chunks.push_back({p, 1});
  return chunks;
}

TEST(SparseAttention, WindowOnlyDecodeFlash) {
  DSV4_REQUIRE_GPU();
  Scenario sc{"window-only decode, Flash", 64};
  sc.chunks = decode_at({0, 1, 63, 126, 127, 128, 4095, 999'999});
  run_scenario(sc);
}

// Pro's two 64-head tiles of a token over windows filled up to 32-row tile and 64-row block
// boundaries and past them: rows masked in one tile of a block, the other, or both.
TEST(SparseAttention, WindowOnlyDecodePro) {
  DSV4_REQUIRE_GPU();
  Scenario sc{"window-only decode, Pro", 128};
  sc.chunks = decode_at({0, 1, 31, 32, 33, 63, 64, 127, 128, 70'000});
  run_scenario(sc);
}

TEST(SparseAttention, CsaDecodeFlashWithPadding) {
  DSV4_REQUIRE_GPU();
  Scenario sc{"CSA decode, Flash, top-k 512", 64};
  sc.source = CompressedSource::kList;
  sc.list_len = 512;
  sc.pad_fraction = 0.05;
  sc.chunks = decode_at({0, 3, 100, 2047, 5000, 1'000'000});
  run_scenario(sc);
}

TEST(SparseAttention, CsaDecodeProWithPadding) {
  DSV4_REQUIRE_GPU();
  Scenario sc{"CSA decode, Pro, top-k 1024", 128};
  sc.source = CompressedSource::kList;
  sc.list_len = 1024;
  sc.pad_fraction = 0.05;
  sc.chunks = decode_at({50, 4200, 1'048'575});
  run_scenario(sc);
}

TEST(SparseAttention, HcaDecodeFlashAndPro) {
  DSV4_REQUIRE_GPU();
  Scenario flash{"HCA decode, Flash", 64};
  flash.source = CompressedSource::kAll;
  flash.ratio = 128;
  flash.chunks = decode_at({0, 127, 130, 16'383, 1'000'000});
  run_scenario(flash);
  Scenario pro{"HCA decode, Pro", 128};
  pro.source = CompressedSource::kAll;
  pro.ratio = 128;
  pro.chunks = decode_at({300, 70'000});
  run_scenario(pro);
}

TEST(SparseAttention, PrefillChunksAndCommit) {
  DSV4_REQUIRE_GPU();
  Scenario sc{"CSA prefill chunks + decode, Flash", 64};
  sc.source = CompressedSource::kList;
  sc.list_len = 64;
  sc.pad_fraction = 0.1;
  sc.chunks = {{300, 200}, {0, 37}, {5000, 1}};
  sc.commit = true;
  run_scenario(sc);
  Scenario hca{"HCA prefill chunk, Pro", 128};
  hca.source = CompressedSource::kAll;
  hca.ratio = 128;
  hca.chunks = {{1000, 150}};
  hca.commit = true;
  run_scenario(hca);
}

// Lists of several 64-row blocks, so that the dense-row kernel gathers odd blocks with valid rows
// too (each block's rows 32-63 copied by its consumer warpgroup), Flash and Pro.
TEST(SparseAttention, CsaPrefillChunkWithListsOfSeveralBlocks) {
  DSV4_REQUIRE_GPU();
  for (const int heads : {64, 128}) {
    Scenario sc{heads == 64 ? "CSA prefill, lists of 300, Flash" : "CSA prefill, lists of 300, Pro",
                heads};
    sc.source = CompressedSource::kList;
    sc.list_len = 300;
    sc.pad_fraction = 0.05;
    sc.chunks = {{2000, 48}, {5000, 1}};
    run_scenario(sc);
  }
}

TEST(SparseAttention, SyntheticModelShapes) {
  DSV4_REQUIRE_GPU();
  Scenario tiny{"synthetic:tiny (d 128, 4 heads, window 32)", 4, 128, 64, 32};
  tiny.source = CompressedSource::kList;
  tiny.list_len = 16;
  tiny.chunks = {{0, 40}, {77, 1}, {10, 3}};
  tiny.commit = true;
  run_scenario(tiny);
  Scenario small{"synthetic:small (d 192, 8 heads, window 64)", 8, 192, 64, 64};
  small.source = CompressedSource::kAll;
  small.ratio = 32;
  small.chunks = {{100, 90}, {3000, 1}};
  run_scenario(small);
}

// Decode timing, Flash shape (64 heads, d = 512), top-k 512 + window 128 = 640 rows per token.
// Four groups of sequences are rotated so that batch 64 reads its 24 MB from HBM, not L2.
void time_decode(int heads, int topk) {
  auto rng = test::fresh_rng("SparseAttention.Timing");
  const int d = 512, W = 128, groups = 4, batch_max = 128;
  const int32_t position = 8191, visible = (position + 1) / 4;
  KvCacheConfig config;
  config.layers = {{4, false}};
  config.max_sequences = groups * batch_max;
  config.max_length = position + 1;
  config.kv_blocks = int64_t(config.max_sequences) * (2 + (visible + 63) / 64);
  KvCache cache(config);
  std::vector<int32_t> slots;
  for (int i = 0; i < config.max_sequences; ++i) {
    slots.push_back(cache.admit(nullptr));
    cache.reserve(slots.back(), position + 1, nullptr);
  }
  // Fill the pool with valid rows (a repeated set of 512 encoded random rows).
  const RowFactory factory{{size_t(d), 64}, &rng};
  std::vector<uint8_t> patterns;
  std::vector<float> scratch;
  for (int i = 0; i < 512; ++i) {
    const auto bytes = factory.make(scratch);
    patterns.insert(patterns.end(), bytes.begin(), bytes.end());
  }
  const size_t pool_bytes = size_t(config.kv_blocks) * 64 * size_t(cache.kv_row_bytes());
  std::vector<uint8_t> pool(pool_bytes);
  for (size_t i = 0; i < pool_bytes; i += patterns.size()) {
    std::memcpy(pool.data() + i, patterns.data(), std::min(patterns.size(), pool_bytes - i));
  }
  DSV4_CUDA_CHECK(
      cudaMemcpy(cache.window_rows(0).pool, pool.data(), pool_bytes, cudaMemcpyHostToDevice));
  DeviceBuffer<uint16_t> q(
      test::to_bf16_bits(test::random_bf16_values(rng, size_t(batch_max) * heads * d)));
  DeviceBuffer<float> sink(std::vector<float>(size_t(heads), 0.5f));
  DeviceBuffer<uint8_t> chunk(std::vector<uint8_t>(
      patterns.begin(), patterns.begin() + std::ptrdiff_t(batch_max * cache.kv_row_bytes())));
  auto out = test::poisoned<uint16_t>(size_t(batch_max) * heads * d);
  std::vector<int32_t> list(size_t(batch_max) * size_t(topk));
  for (int t = 0; t < batch_max; ++t) {
    std::set<int32_t> chosen;
    while (int(chosen.size()) < topk) chosen.insert(int32_t(rng() % uint64_t(visible)));
    std::copy(chosen.begin(), chosen.end(), list.begin() + std::ptrdiff_t(t * topk));
  }
  DeviceBuffer<int32_t> d_list(list);

  DeviceBuffer<float> workspace(sparse_attention_workspace_bytes(batch_max, heads, W + topk) /
                                sizeof(float));
  for (const bool portable : {false, true}) {
    for (int batch_size : {1, 32, 64, 128}) {
      std::vector<std::unique_ptr<test::DeviceBatch>> batches;
      for (int g = 0; g < groups; ++g) {
        std::vector<test::Chunk> chunks;
        for (int i = 0; i < batch_size; ++i)
          chunks.push_back({slots[size_t(g * batch_max + i)], position, 1});
        batches.push_back(std::make_unique<test::DeviceBatch>(chunks));
      }
      SparseAttentionArgs args;
      args.q = q.data();
      args.sink = sink.data();
      args.out = out.data();
      args.heads = heads;
      args.head_dim = d;
      args.rope_dim = 64;
      args.scale = float(1.0 / std::sqrt(double(d)));
      args.window = W;
      args.chunk_rows = chunk.data();
      args.ring = cache.window_rows(0);
      args.source = CompressedSource::kList;
      args.entries = cache.entry_rows(0);
      args.list = d_list.data();
      args.list_stride = topk;
      args.list_len = topk;
      args.max_rows = W + topk;
      args.workspace = workspace.data();
      args.workspace_bytes = workspace.size() * sizeof(float);
      args.portable = portable;
      const float ms = test::median_ms(20, [&](int i) {
        args.batch = batches[size_t(i % groups)]->view();
        sparse_attention(args, nullptr);
      });
      const double kv_bytes = double(batch_size) * (W + topk) * cache.kv_row_bytes();
      const double flops = 4.0 * batch_size * heads * (W + topk) * d;
      std::printf(
          "[timing] %s sparse attention decode, %d heads, top-k %d + window %d, batch %d: "
          "%.1f us, KV %.2f MB, %.3f TB/s, %.1f TFLOP/s\n",
          sparse_attention_uses_sm90(args) ? "sm90" : "portable", heads, topk, W, batch_size,
          ms * 1e3, kv_bytes / 1e6, kv_bytes / (ms * 1e-3) / 1e12, flops / (ms * 1e-3) / 1e12);
    }
  }
}

TEST(SparseAttention, DecodeTiming) {
  DSV4_REQUIRE_GPU();
  time_decode(64, 512);
  time_decode(128, 1024);
}

}  // namespace
}  // namespace dsv4::cuda
