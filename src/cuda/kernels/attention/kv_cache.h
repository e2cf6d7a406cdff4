// The paged attention state of every sequence on the GPU (MODEL.md §3). Placed in the
// attention kernel domain for now; it is backend infrastructure (src/cuda/ is its final home).
//
// Two block pools, allocated once at construction: KV rows (KvRowFormat bytes, 584 for
// d = 512, rd = 64) and index keys (IndexKeyFormat bytes, 68 for d = 128), `block_rows` rows
// per block. Each sequence occupies a slot; per slot and layer a block table lists its blocks
// for the sliding-window ring (allocated at admission), the compressed entries and the index
// keys (allocated by reserve() as the sequence grows). With dense_entry_blocks, HCA layers also
// keep a bf16 copy of every entry (head_dim values, the FP8 row's exact values; a third pool,
// zeroed at construction), which the sm_90 attention reads without dequantizing (decode, from
// 64-row pages). Every slot also owns the compressors'
// partial-window state (fp32, CompressorStateView). Running out of slots or blocks is a
// dsv4::Error and leaves the cache unchanged. Appending rows happens in kernels (kv_write.h,
// compressor.h) through the views; nothing here runs inside a decode step except the views.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/kernels/attention/kv_views.h"
#include "cuda/runtime/device_buffer.h"

namespace dsv4 {
struct ModelConfig;
}

namespace dsv4::cuda {

struct KvCacheLayer {
  int32_t compress_ratio = 0;  // 0: sliding window only
  bool sparse = false;         // CSA: overlapping compressor, Lightning Indexer keys
};

struct KvCacheConfig {
  int32_t head_dim = 512;
  int32_t rope_dim = 64;
  int32_t index_dim = 128;
  int32_t window = 128;
  int32_t block_rows = 64;
  std::vector<KvCacheLayer> layers;
  int32_t max_sequences = 1;
  int64_t max_length = 0;          // tokens one sequence may reach (sizes the block tables)
  int64_t kv_blocks = 0;           // KV-row pool: windows and compressed entries
  int64_t index_blocks = 0;        // index-key pool
  int64_t dense_entry_blocks = 0;  // bf16 copies of HCA entries; 0: none kept
};

// The layer schedule and sizes of a model; pools and limits as given.
KvCacheConfig kv_cache_config(const ModelConfig& model, int32_t max_sequences, int64_t max_length,
                              int64_t kv_blocks, int64_t index_blocks);
// The same with pools that let every slot reach max_length (blocks of block_rows rows), and
// bf16 copies of HCA entries when hca_copies.
KvCacheConfig kv_cache_config_every_slot_full(const ModelConfig& model, int32_t max_sequences,
                                              int64_t max_length, int32_t block_rows,
                                              bool hca_copies);

class KvCache {
 public:
  explicit KvCache(const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  int32_t kv_row_bytes() const { return kv_row_bytes_; }
  int32_t index_key_bytes() const { return index_key_bytes_; }

  // Takes a free slot with the window blocks of every layer and resets its compressor state
  // (on `stream`). Throws dsv4::Error when every slot is taken or the KV pool is too full.
  int32_t admit(cudaStream_t stream);
  // Makes room for positions [0, length): the compressed entries and index keys they complete.
  // Uploads changed block tables on `stream`. Throws dsv4::Error (cache unchanged) when a pool
  // is too full or length exceeds max_length.
  void reserve(int32_t slot, int64_t length, cudaStream_t stream);
  // Returns the slot and all its blocks.
  void release(int32_t slot);

  int32_t free_slots() const { return int32_t(free_slots_.size()); }
  int64_t free_kv_blocks() const { return int64_t(free_kv_.size()); }
  int64_t free_index_blocks() const { return int64_t(free_index_.size()); }
  int64_t reserved_length(int32_t slot) const { return length_[size_t(slot)]; }

  PagedRowsView window_rows(int32_t layer) const;     // ring: slot = position % window
  PagedRowsView entry_rows(int32_t layer) const;      // compressed entry w at row w
  PagedRowsView index_key_rows(int32_t layer) const;  // index key w at row w
  // HCA entry w as head_dim bf16 at row w; a view without a pool where the layer keeps none.
  PagedRowsView dense_entry_rows(int32_t layer) const;
  int64_t dense_entry_pool_rows() const { return config_.dense_entry_blocks * config_.block_rows; }
  int64_t free_dense_entry_blocks() const { return int64_t(free_dense_.size()); }
  CompressorStateView compressor_state(int32_t layer, bool indexer) const;
  int32_t compressor_width(int32_t layer, bool indexer) const;

 private:
  enum Kind { kWindow = 0, kEntries = 1, kIndexKeys = 2, kDenseEntries = 3, kKinds = 4 };
  bool keeps_dense_entries(int32_t layer) const;
  size_t table_offset(int32_t slot, int32_t layer, Kind kind) const;
  PagedRowsView view(int32_t layer, Kind kind) const;
  void check_slot(int32_t slot) const;
  void upload_table(int32_t slot, cudaStream_t stream);

  KvCacheConfig config_;
  int32_t kv_row_bytes_ = 0, index_key_bytes_ = 0;
  int32_t window_blocks_ = 0;  // per layer and slot
  int64_t table_width_ = 0;    // block-table entries per (slot, layer, kind)
  DeviceBuffer<uint8_t> kv_pool_, index_pool_, dense_pool_;
  DeviceBuffer<int32_t> tables_;  // [slot][layer][kind][table_width_]
  std::vector<int32_t> host_tables_;
  DeviceBuffer<float> state_kv_, state_gate_;  // [slot][state_floats_per_slot_]
  int64_t state_floats_per_slot_ = 0;
  std::vector<int64_t> state_offset_;  // [layer][main, indexer] offset within a slot; -1: none
  std::vector<int32_t> free_slots_, free_kv_, free_index_, free_dense_;
  std::vector<bool> active_;
  std::vector<int64_t> length_;  // reserved length per slot
  // [slot][layer] allocated; a layer's dense entries have as many blocks as its entries
  std::vector<int32_t> entry_blocks_, index_key_blocks_;
};

// Row copies between a contiguous buffer rows[n, view.row_bytes] and the paged rows
// view.row(slots[i], indices[i]) (device arrays); for tests, import and export.
void scatter_rows(const PagedRowsView& view, const int32_t* slots, const int32_t* indices,
                  const uint8_t* rows, int32_t n, cudaStream_t stream);
void gather_rows(const PagedRowsView& view, const int32_t* slots, const int32_t* indices,
                 uint8_t* rows, int32_t n, cudaStream_t stream);

// Rows [0, count) of `slot` in `rows` (KV rows) written to `copies` (dense_entry_rows) as their
// exact bf16 values, as the compressor writes them; for state filled outside the model
// (benchmarks, imports).
void copy_rows_as_bf16(const PagedRowsView& rows, const PagedRowsView& copies, int32_t slot,
                       int64_t count, int32_t head_dim, int32_t rope_dim, cudaStream_t stream);

}  // namespace dsv4::cuda
