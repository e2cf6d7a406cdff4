// CudaModel's benchmark-only entry points: a sequence whose cached attention state is random
// instead of the result of a prompt, so that decode steps at long contexts can be timed without
// prefilling them.
#include <algorithm>

#include "core/error.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/cuda_model_state.h"
#include "cuda/model/random_fill.h"
#include "cuda/runtime/check.h"
#include "model/synthetic_random.h"

namespace dsv4::cuda {

void CudaModel::fill_random_context(int32_t slot, int64_t length, uint64_t seed) {
  State& s = *s_;
  const ModelConfig& c = config_;
  if (slot < 0 || size_t(slot) >= s.lengths.size() || s.lengths[size_t(slot)] < 0) {
    fail("CudaModel::fill_random_context: slot {} is not admitted", slot);
  }
  if (s.lengths[size_t(slot)] != 0) {
    fail("CudaModel::fill_random_context: slot {} already holds {} tokens", slot,
         s.lengths[size_t(slot)]);
  }
  if (length < 0 || length > std::min(s.max_length, c.max_seq_len)) {
    fail("CudaModel::fill_random_context: length {} outside [0, {}]", length,
         std::min(s.max_length, c.max_seq_len));
  }
  KvCache& cache = *s.cache;
  cache.reserve(slot, length, s.stream);
  const KvCacheConfig& kc = cache.config();
  for (int32_t layer = 0; layer < int32_t(c.layers.size()); ++layer) {
    const LayerSpec& spec = c.layers[size_t(layer)];
    const uint64_t layer_seed = derive_seed(derive_seed(seed, uint64_t(slot)), uint64_t(layer));
    // The ring holds positions [length - window, length) at rows position % window: every row
    // once the window is full, rows [0, length) before.
    fill_random_kv_rows(cache.window_rows(layer), slot, std::min<int64_t>(kc.window, length),
                        kc.head_dim, kc.rope_dim, derive_seed(layer_seed, "window"), s.stream);
    if (spec.compress_ratio <= 0) continue;
    const int64_t entries = length / spec.compress_ratio;
    fill_random_kv_rows(cache.entry_rows(layer), slot, entries, kc.head_dim, kc.rope_dim,
                        derive_seed(layer_seed, "entries"), s.stream);
    const PagedRowsView copies = cache.dense_entry_rows(layer);
    if (copies.pool) {
      copy_rows_as_bf16(cache.entry_rows(layer), copies, slot, entries, kc.head_dim, kc.rope_dim,
                        s.stream);
    }
    if (spec.attention == AttentionKind::kCompressedSparse) {
      fill_random_index_keys(cache.index_key_rows(layer), slot, entries, kc.index_dim,
                             derive_seed(layer_seed, "index_keys"), s.stream);
    }
  }
  // The compressors' partial windows stay as admission reset them: the next completed entry
  // pools only the tokens decoded from here on, which costs the same.
  s.lengths[size_t(slot)] = length;
}

}  // namespace dsv4::cuda
