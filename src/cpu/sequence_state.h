// Per-sequence attention state (MODEL.md §3): the ring of the last `window` KV rows, the
// compressed entries, the indexer's keys and the compressors' partial windows. In official
// numerics rows are stored in their exact quantized form (KvRowFormat / IndexKeyFormat); in
// fp32 numerics they are stored as floats.
#pragma once

#include <cstdint>
#include <vector>

#include "core/kv_row.h"
#include "model/config.h"

namespace dsv4::cpu {

class RowStore {
 public:
  enum class Kind { kKvRow, kIndexKey };
  RowStore() = default;
  RowStore(Kind kind, size_t dim, size_t rope_dim, Numerics numerics);

  size_t rows() const { return rows_; }
  size_t dim() const { return dim_; }
  void resize(size_t rows);
  void write(size_t row, const float* values);  // encodes in official numerics
  void append(const float* values);
  void read(size_t row, float* values) const;  // decodes
  // Every row decoded, [rows, dim].
  std::vector<float> read_all() const;
  size_t bytes_per_row() const;

 private:
  Kind kind_ = Kind::kKvRow;
  size_t dim_ = 0;
  Numerics numerics_ = Numerics::kFp32;
  KvRowFormat kv_format_{0, 0};
  IndexKeyFormat key_format_{0};
  size_t rows_ = 0;
  std::vector<uint8_t> encoded_;
  std::vector<float> plain_;
};

// The partial windows of one compressor: kv projections and gate logits (+ position bias) of
// the tokens of the current window, and of the previous complete window when windows overlap.
struct CompressorState {
  std::vector<float> previous_kv, previous_gate;  // [ratio, width]
  std::vector<float> current_kv, current_gate;    // [ratio, width]
  bool has_previous = false;
};

struct LayerState {
  RowStore window;      // slot = position % window_size
  RowStore compressed;  // entry w pools tokens [w·r, (w+1)·r)
  RowStore index_keys;  // CSA layers only
  CompressorState compressor, indexer_compressor;
};

struct SequenceState {
  int64_t length = 0;  // tokens consumed; the next token's position
  std::vector<LayerState> layers;
};

SequenceState make_sequence_state(const ModelConfig& config, Numerics numerics);

}  // namespace dsv4::cpu
