#include "cpu/sequence_state.h"

#include <algorithm>

namespace dsv4::cpu {

RowStore::RowStore(Kind kind, size_t dim, size_t rope_dim, Numerics numerics)
    : kind_(kind), dim_(dim), numerics_(numerics), kv_format_{dim, rope_dim}, key_format_{dim} {}

size_t RowStore::bytes_per_row() const {
  if (numerics_ != Numerics::kOfficial) return dim_ * sizeof(float);
  return kind_ == Kind::kKvRow ? kv_format_.bytes() : key_format_.bytes();
}

void RowStore::resize(size_t rows) {
  rows_ = rows;
  if (numerics_ == Numerics::kOfficial) {
    encoded_.resize(rows * bytes_per_row());
  } else {
    plain_.resize(rows * dim_);
  }
}

void RowStore::write(size_t row, const float* values) {
  if (numerics_ != Numerics::kOfficial) {
    std::copy(values, values + dim_, plain_.begin() + std::ptrdiff_t(row * dim_));
    return;
  }
  uint8_t* out = encoded_.data() + row * bytes_per_row();
  if (kind_ == Kind::kKvRow) {
    kv_format_.encode(values, out);
  } else {
    key_format_.encode(values, out);
  }
}

void RowStore::append(const float* values) {
  resize(rows_ + 1);
  write(rows_ - 1, values);
}

void RowStore::read(size_t row, float* values) const {
  if (numerics_ != Numerics::kOfficial) {
    std::copy_n(plain_.begin() + std::ptrdiff_t(row * dim_), dim_, values);
    return;
  }
  const uint8_t* in = encoded_.data() + row * bytes_per_row();
  if (kind_ == Kind::kKvRow) {
    kv_format_.decode(in, values);
  } else {
    key_format_.decode(in, values);
  }
}

std::vector<float> RowStore::read_all() const {
  std::vector<float> all(rows_ * dim_);
  for (size_t r = 0; r < rows_; ++r) read(r, all.data() + r * dim_);
  return all;
}

SequenceState make_sequence_state(const ModelConfig& config, Numerics numerics) {
  SequenceState state;
  state.layers.resize(size_t(config.n_layers));
  const auto d = size_t(config.head_dim), rd = size_t(config.rope_head_dim);
  for (size_t i = 0; i < state.layers.size(); ++i) {
    LayerState& layer = state.layers[i];
    layer.window = RowStore(RowStore::Kind::kKvRow, d, rd, numerics);
    layer.window.resize(size_t(config.window_size));
    layer.compressed = RowStore(RowStore::Kind::kKvRow, d, rd, numerics);
    layer.index_keys =
        RowStore(RowStore::Kind::kIndexKey, size_t(config.index_head_dim), rd, numerics);
  }
  return state;
}

}  // namespace dsv4::cpu
