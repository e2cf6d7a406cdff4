#include "cuda/kernels/attention/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/kv_row.h"
#include "cuda/kernels/attention/kv_row.cuh"
#include "cuda/kernels/common/grid_dependency.cuh"
#include "cuda/runtime/check.h"
#include "cuda/runtime/launch.h"
#include "model/config.h"

namespace dsv4::cuda {
namespace {

constexpr int kCopyThreads = 256;

__global__ void reset_state_kernel(float* kv, float* gate, int64_t n) {
  wait_for_previous_kernel();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    kv[i] = 0.0f;
    gate[i] = -INFINITY;
  }
}

// One warp per row, 4-byte words (row_bytes is a multiple of 4).
template <bool kToPages>
__global__ void copy_rows_kernel(PagedRowsView view, const int32_t* slots, const int32_t* indices,
                                 uint8_t* rows, int32_t n) {
  wait_for_previous_kernel();
  const int32_t i = int32_t(blockIdx.x) * (kCopyThreads / 32) + int32_t(threadIdx.x / 32);
  if (i >= n) return;
  auto* paged = reinterpret_cast<uint32_t*>(view.row(slots[i], indices[i]));
  auto* flat = reinterpret_cast<uint32_t*>(rows + int64_t(i) * view.row_bytes);
  for (int w = int(threadIdx.x % 32); w < view.row_bytes / 4; w += 32) {
    if constexpr (kToPages) {
      paged[w] = flat[w];
    } else {
      flat[w] = paged[w];
    }
  }
}

template <bool kToPages>
void copy_rows(const PagedRowsView& view, const int32_t* slots, const int32_t* indices,
               uint8_t* rows, int32_t n, cudaStream_t stream) {
  if (view.row_bytes % 4 != 0)
    fail("paged row copy: row_bytes {} not a multiple of 4", view.row_bytes);
  if (n <= 0) return;
  const unsigned blocks = unsigned((n + kCopyThreads / 32 - 1) / (kCopyThreads / 32));
  launch_dependent(copy_rows_kernel<kToPages>, blocks, kCopyThreads, 0, stream, view, slots,
                   indices, rows, n);
}

// One warp per row.
__global__ void copy_rows_as_bf16_kernel(PagedRowsView rows, PagedRowsView copies, int32_t slot,
                                         int64_t count, int32_t nope, int32_t rope) {
  wait_for_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * (kCopyThreads / 32) + int64_t(threadIdx.x / 32);
  if (i >= count) return;
  dequantize_kv_row_warp(rows.row(slot, i), nope, rope,
                         reinterpret_cast<uint16_t*>(copies.row(slot, i)), int(threadIdx.x % 32));
}

template <typename T>
T pop(std::vector<T>& stack) {
  const T value = stack.back();
  stack.pop_back();
  return value;
}

}  // namespace

KvCacheConfig kv_cache_config(const ModelConfig& model, int32_t max_sequences, int64_t max_length,
                              int64_t kv_blocks, int64_t index_blocks) {
  KvCacheConfig c;
  c.head_dim = int32_t(model.head_dim);
  c.rope_dim = int32_t(model.rope_head_dim);
  c.index_dim = model.index_head_dim > 0 ? int32_t(model.index_head_dim) : 128;
  c.window = int32_t(model.window_size);
  for (const LayerSpec& spec : model.layers) {
    c.layers.push_back(
        {int32_t(spec.compress_ratio), spec.attention == AttentionKind::kCompressedSparse});
  }
  c.max_sequences = max_sequences;
  c.max_length = max_length;
  c.kv_blocks = kv_blocks;
  c.index_blocks = index_blocks;
  return c;
}

KvCacheConfig kv_cache_config_every_slot_full(const ModelConfig& model, int32_t max_sequences,
                                              int64_t max_length, int32_t block_rows,
                                              bool hca_copies) {
  const auto blocks = [&](int64_t rows) { return (rows + block_rows - 1) / block_rows; };
  int64_t kv = 0, index = 0, dense = 0;
  for (const LayerSpec& spec : model.layers) {
    kv += blocks(model.window_size);
    if (spec.compress_ratio <= 0) continue;
    const int64_t entries = blocks((max_length + spec.compress_ratio - 1) / spec.compress_ratio);
    kv += entries;
    if (spec.attention == AttentionKind::kCompressedSparse) {
      index += entries;
    } else if (hca_copies) {
      dense += entries;
    }
  }
  KvCacheConfig c = kv_cache_config(model, max_sequences, max_length, kv * max_sequences,
                                    std::max<int64_t>(1, index * max_sequences));
  c.block_rows = block_rows;
  c.dense_entry_blocks = dense * max_sequences;
  return c;
}

KvCache::KvCache(const KvCacheConfig& config) : config_(config) {
  const KvCacheConfig& c = config_;
  if (c.head_dim <= c.rope_dim || (c.head_dim - c.rope_dim) % 64 != 0 || c.rope_dim % 8 != 0 ||
      c.index_dim % 32 != 0 || c.window <= 0 || c.block_rows <= 0 || c.layers.empty() ||
      c.max_sequences <= 0 || c.max_length <= 0 || c.kv_blocks < 0 || c.index_blocks < 0 ||
      c.dense_entry_blocks < 0) {
    fail(
        "KvCache: bad config (head_dim {}, rope_dim {}, index_dim {}, window {}, block_rows {}, "
        "{} layers, {} sequences, max_length {}, {} KV blocks, {} index blocks, {} bf16 entry "
        "blocks)",
        c.head_dim, c.rope_dim, c.index_dim, c.window, c.block_rows, c.layers.size(),
        c.max_sequences, c.max_length, c.kv_blocks, c.index_blocks, c.dense_entry_blocks);
  }
  kv_row_bytes_ = int32_t(KvRowFormat{size_t(c.head_dim), size_t(c.rope_dim)}.bytes());
  index_key_bytes_ = int32_t(IndexKeyFormat{size_t(c.index_dim)}.bytes());
  window_blocks_ = (c.window + c.block_rows - 1) / c.block_rows;
  int64_t max_entries = 0;
  for (const KvCacheLayer& layer : c.layers) {
    if (layer.compress_ratio < 0 || (layer.sparse && layer.compress_ratio == 0)) {
      fail("KvCache: bad layer (ratio {}, sparse {})", layer.compress_ratio, layer.sparse);
    }
    if (layer.compress_ratio > 0) {
      max_entries = std::max(max_entries, c.max_length / layer.compress_ratio);
    }
  }
  table_width_ = std::max<int64_t>(window_blocks_, (max_entries + c.block_rows - 1) / c.block_rows);

  const auto layers = int64_t(c.layers.size());
  kv_pool_ = DeviceBuffer<uint8_t>(size_t(c.kv_blocks * c.block_rows * kv_row_bytes_));
  index_pool_ = DeviceBuffer<uint8_t>(size_t(c.index_blocks * c.block_rows * index_key_bytes_));
  // Zeroed: a page's unwritten rows are read (masked, times zero) and must be finite.
  dense_pool_ = DeviceBuffer<uint8_t>(size_t(dense_entry_pool_rows() * c.head_dim * 2));
  if (dense_pool_.size() > 0) {
    DSV4_CUDA_CHECK(cudaMemset(dense_pool_.data(), 0, dense_pool_.size()));
  }
  host_tables_.assign(size_t(c.max_sequences * layers * kKinds * table_width_), -1);
  tables_ = DeviceBuffer<int32_t>(host_tables_);

  state_offset_.assign(size_t(layers * 2), -1);
  for (int64_t l = 0; l < layers; ++l) {
    const KvCacheLayer& layer = c.layers[size_t(l)];
    if (layer.compress_ratio == 0) continue;
    state_offset_[size_t(2 * l)] = state_floats_per_slot_;
    state_floats_per_slot_ += (layer.sparse ? 2 : 1) * int64_t(layer.compress_ratio) *
                              compressor_width(int32_t(l), false);
    if (layer.sparse) {
      state_offset_[size_t(2 * l + 1)] = state_floats_per_slot_;
      state_floats_per_slot_ +=
          2 * int64_t(layer.compress_ratio) * compressor_width(int32_t(l), true);
    }
  }
  state_kv_ = DeviceBuffer<float>(size_t(c.max_sequences * state_floats_per_slot_));
  state_gate_ = DeviceBuffer<float>(size_t(c.max_sequences * state_floats_per_slot_));

  for (int32_t s = c.max_sequences - 1; s >= 0; --s) free_slots_.push_back(s);
  for (int64_t b = c.kv_blocks - 1; b >= 0; --b) free_kv_.push_back(int32_t(b));
  for (int64_t b = c.index_blocks - 1; b >= 0; --b) free_index_.push_back(int32_t(b));
  for (int64_t b = c.dense_entry_blocks - 1; b >= 0; --b) free_dense_.push_back(int32_t(b));
  active_.assign(size_t(c.max_sequences), false);
  length_.assign(size_t(c.max_sequences), 0);
  entry_blocks_.assign(size_t(c.max_sequences * layers), 0);
  index_key_blocks_.assign(size_t(c.max_sequences * layers), 0);
}

size_t KvCache::table_offset(int32_t slot, int32_t layer, Kind kind) const {
  const auto layers = int64_t(config_.layers.size());
  return size_t(((int64_t(slot) * layers + layer) * kKinds + kind) * table_width_);
}

void KvCache::check_slot(int32_t slot) const {
  if (slot < 0 || slot >= config_.max_sequences || !active_[size_t(slot)]) {
    fail("KvCache: slot {} is not an admitted sequence", slot);
  }
}

void KvCache::upload_table(int32_t slot, cudaStream_t stream) {
  const size_t offset = table_offset(slot, 0, kWindow);
  const size_t count = config_.layers.size() * kKinds * size_t(table_width_);
  // Pageable source: the driver stages it before returning, so the mirror may change after.
  DSV4_CUDA_CHECK(cudaMemcpyAsync(tables_.data() + offset, host_tables_.data() + offset,
                                  count * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
}

int32_t KvCache::admit(cudaStream_t stream) {
  if (free_slots_.empty()) {
    fail("KV cache full: all {} sequence slots are in use", config_.max_sequences);
  }
  const int64_t need = int64_t(window_blocks_) * int64_t(config_.layers.size());
  if (free_kv_blocks() < need) {
    fail("KV cache full: admitting a sequence needs {} KV blocks for its windows, {} of {} free",
         need, free_kv_blocks(), config_.kv_blocks);
  }
  const int32_t slot = pop(free_slots_);
  for (int32_t l = 0; l < int32_t(config_.layers.size()); ++l) {
    for (int32_t b = 0; b < window_blocks_; ++b) {
      host_tables_[table_offset(slot, l, kWindow) + size_t(b)] = pop(free_kv_);
    }
  }
  active_[size_t(slot)] = true;
  length_[size_t(slot)] = 0;
  if (state_floats_per_slot_ > 0) {
    const int64_t offset = int64_t(slot) * state_floats_per_slot_;
    const auto blocks = unsigned(std::min<int64_t>((state_floats_per_slot_ + 255) / 256, 1024));
    launch_dependent(reset_state_kernel, blocks, 256, 0, stream, state_kv_.data() + offset,
                     state_gate_.data() + offset, state_floats_per_slot_);
  }
  upload_table(slot, stream);
  return slot;
}

void KvCache::reserve(int32_t slot, int64_t length, cudaStream_t stream) {
  check_slot(slot);
  if (length > config_.max_length) {
    fail("KV cache: length {} of slot {} exceeds max_length {}", length, slot, config_.max_length);
  }
  if (length <= length_[size_t(slot)]) return;
  const auto layers = int32_t(config_.layers.size());
  int64_t kv_need = 0, index_need = 0, dense_need = 0;
  std::vector<int32_t> blocks(size_t(layers), 0);
  for (int32_t l = 0; l < layers; ++l) {
    const KvCacheLayer& layer = config_.layers[size_t(l)];
    if (layer.compress_ratio == 0) continue;
    const int64_t entries = length / layer.compress_ratio;
    blocks[size_t(l)] = int32_t((entries + config_.block_rows - 1) / config_.block_rows);
    const size_t at = size_t(slot) * size_t(layers) + size_t(l);
    kv_need += blocks[size_t(l)] - entry_blocks_[at];
    if (layer.sparse) index_need += blocks[size_t(l)] - index_key_blocks_[at];
    if (keeps_dense_entries(l)) dense_need += blocks[size_t(l)] - entry_blocks_[at];
  }
  if (kv_need > free_kv_blocks() || index_need > free_index_blocks() ||
      dense_need > free_dense_entry_blocks()) {
    fail(
        "KV cache full: slot {} needs {} more KV blocks ({} of {} free), {} more index-key "
        "blocks ({} of {} free) and {} more bf16 entry blocks ({} of {} free) to hold {} tokens",
        slot, kv_need, free_kv_blocks(), config_.kv_blocks, index_need, free_index_blocks(),
        config_.index_blocks, dense_need, free_dense_entry_blocks(), config_.dense_entry_blocks,
        length);
  }
  for (int32_t l = 0; l < layers; ++l) {
    const size_t at = size_t(slot) * size_t(layers) + size_t(l);
    for (; entry_blocks_[at] < blocks[size_t(l)]; ++entry_blocks_[at]) {
      host_tables_[table_offset(slot, l, kEntries) + size_t(entry_blocks_[at])] = pop(free_kv_);
      if (keeps_dense_entries(l)) {
        host_tables_[table_offset(slot, l, kDenseEntries) + size_t(entry_blocks_[at])] =
            pop(free_dense_);
      }
    }
    if (!config_.layers[size_t(l)].sparse) continue;
    for (; index_key_blocks_[at] < blocks[size_t(l)]; ++index_key_blocks_[at]) {
      host_tables_[table_offset(slot, l, kIndexKeys) + size_t(index_key_blocks_[at])] =
          pop(free_index_);
    }
  }
  length_[size_t(slot)] = length;
  if (kv_need > 0 || index_need > 0 || dense_need > 0) upload_table(slot, stream);
}

void KvCache::release(int32_t slot) {
  check_slot(slot);
  const auto layers = int32_t(config_.layers.size());
  for (int32_t l = 0; l < layers; ++l) {
    const size_t at = size_t(slot) * size_t(layers) + size_t(l);
    const int32_t counts[kKinds] = {window_blocks_, entry_blocks_[at], index_key_blocks_[at],
                                    keeps_dense_entries(l) ? entry_blocks_[at] : 0};
    for (int k = 0; k < kKinds; ++k) {
      int32_t* table = host_tables_.data() + table_offset(slot, l, Kind(k));
      std::vector<int32_t>& free = k == kIndexKeys      ? free_index_
                                   : k == kDenseEntries ? free_dense_
                                                        : free_kv_;
      for (int32_t b = 0; b < counts[k]; ++b) {
        free.push_back(table[b]);
        table[b] = -1;
      }
    }
    entry_blocks_[at] = 0;
    index_key_blocks_[at] = 0;
  }
  active_[size_t(slot)] = false;
  length_[size_t(slot)] = 0;
  free_slots_.push_back(slot);
}

PagedRowsView KvCache::view(int32_t layer, Kind kind) const {
  if (layer < 0 || layer >= int32_t(config_.layers.size())) fail("KvCache: no layer {}", layer);
  PagedRowsView v;
  const DeviceBuffer<uint8_t>& pool = kind == kIndexKeys      ? index_pool_
                                      : kind == kDenseEntries ? dense_pool_
                                                              : kv_pool_;
  v.pool = const_cast<uint8_t*>(pool.data());
  v.table = tables_.data() + table_offset(0, layer, kind);
  v.table_stride = int64_t(config_.layers.size()) * kKinds * table_width_;
  v.block_rows = config_.block_rows;
  v.row_bytes = kind == kIndexKeys      ? index_key_bytes_
                : kind == kDenseEntries ? 2 * config_.head_dim
                                        : kv_row_bytes_;
  return v;
}

PagedRowsView KvCache::window_rows(int32_t layer) const {
  return view(layer, kWindow);
}

PagedRowsView KvCache::entry_rows(int32_t layer) const {
  if (config_.layers.at(size_t(layer)).compress_ratio == 0) {
    fail("KvCache: layer {} has no compressed entries", layer);
  }
  return view(layer, kEntries);
}

PagedRowsView KvCache::index_key_rows(int32_t layer) const {
  if (!config_.layers.at(size_t(layer)).sparse) fail("KvCache: layer {} has no index keys", layer);
  return view(layer, kIndexKeys);
}

bool KvCache::keeps_dense_entries(int32_t layer) const {
  const KvCacheLayer& l = config_.layers.at(size_t(layer));
  return config_.dense_entry_blocks > 0 && l.compress_ratio > 0 && !l.sparse;
}

PagedRowsView KvCache::dense_entry_rows(int32_t layer) const {
  PagedRowsView v = view(layer, kDenseEntries);
  if (!keeps_dense_entries(layer)) v.pool = nullptr;
  return v;
}

int32_t KvCache::compressor_width(int32_t layer, bool indexer) const {
  const KvCacheLayer& l = config_.layers.at(size_t(layer));
  const int32_t dim = indexer ? config_.index_dim : config_.head_dim;
  return l.sparse ? 2 * dim : dim;
}

CompressorStateView KvCache::compressor_state(int32_t layer, bool indexer) const {
  if (layer < 0 || layer >= int32_t(config_.layers.size())) fail("KvCache: no layer {}", layer);
  const int64_t offset = state_offset_[size_t(2 * layer + (indexer ? 1 : 0))];
  if (offset < 0)
    fail("KvCache: layer {} has no {} compressor", layer, indexer ? "indexer" : "main");
  CompressorStateView v;
  v.kv = const_cast<float*>(state_kv_.data()) + offset;
  v.gate = const_cast<float*>(state_gate_.data()) + offset;
  v.sequence_stride = state_floats_per_slot_;
  v.buffers = config_.layers[size_t(layer)].sparse ? 2 : 1;
  return v;
}

void scatter_rows(const PagedRowsView& view, const int32_t* slots, const int32_t* indices,
                  const uint8_t* rows, int32_t n, cudaStream_t stream) {
  copy_rows<true>(view, slots, indices, const_cast<uint8_t*>(rows), n, stream);
}

void gather_rows(const PagedRowsView& view, const int32_t* slots, const int32_t* indices,
                 uint8_t* rows, int32_t n, cudaStream_t stream) {
  copy_rows<false>(view, slots, indices, rows, n, stream);
}

void copy_rows_as_bf16(const PagedRowsView& rows, const PagedRowsView& copies, int32_t slot,
                       int64_t count, int32_t head_dim, int32_t rope_dim, cudaStream_t stream) {
  const int32_t nope = head_dim - rope_dim;
  if (!copies.pool || nope <= 0 || nope % 64 != 0 || rope_dim % 16 != 0 ||
      rows.row_bytes != int32_t(KvRowFormat{size_t(head_dim), size_t(rope_dim)}.bytes()) ||
      copies.row_bytes != 2 * head_dim) {
    fail("copy_rows_as_bf16: rows of {} bytes into copies of {} bytes (head_dim {}, rope_dim {})",
         rows.row_bytes, copies.pool ? copies.row_bytes : 0, head_dim, rope_dim);
  }
  if (count <= 0) return;
  const auto blocks = unsigned((count + kCopyThreads / 32 - 1) / (kCopyThreads / 32));
  launch_dependent(copy_rows_as_bf16_kernel, blocks, kCopyThreads, 0, stream, rows, copies, slot,
                   count, nope, rope_dim);
}

}  // namespace dsv4::cuda
