#include "cuda/model/dense_attention_rows.h"

#include <algorithm>
#include <span>

#include "cuda/kernels/attention/dense_rows_layout.h"
#include "cuda/runtime/device.h"

namespace dsv4::cuda {
namespace {

// Decode's window-only layouts (a window of rows per token) are capped; a prefill chunk is not.
constexpr int64_t kMaxDecodeScratchBytes = int64_t(256) << 20;

}  // namespace

bool dense_attention_applies(const ModelConfig& c) {
  return sm90_kernels_available() && c.head_dim == 512 && c.rope_head_dim == 64 &&
         c.n_heads % 64 == 0 && c.window_size % 64 == 0;
}

DenseAttentionRows::DenseAttentionRows(const ModelConfig& c, int64_t max_tokens, int64_t max_length,
                                       int64_t min_tokens, bool hca_decode)
    : window_(int32_t(c.window_size)),
      head_dim_(c.head_dim),
      min_tokens_(std::max<int64_t>(1, min_tokens)) {
  if (!dense_attention_applies(c)) return;
  for (const LayerSpec& l : c.layers) {
    hca_layers_ += l.compress_ratio > 0 && l.attention != AttentionKind::kCompressedSparse;
  }
  hca_decode_ = hca_decode && hca_layers_ > 0;
  int64_t rows = hca_decode_
                     ? std::min(kMaxDecodeScratchBytes / 2 / head_dim_, max_tokens * c.window_size)
                     : 0;
  if (max_tokens >= min_tokens_) {
    int32_t min_ratio = 0;
    for (const LayerSpec& spec : c.layers) {
      const auto ratio = int32_t(spec.compress_ratio);
      if (std::find(ratios_.begin(), ratios_.end(), ratio) == ratios_.end()) {
        ratios_.push_back(ratio);
      }
      if (ratio > 0) min_ratio = min_ratio == 0 ? ratio : std::min(min_ratio, ratio);
    }
    // One chunk of a full step at the longest context fits (at 1M positions a CSA layer's 256K
    // entries: 256 MB), so a long prompt's last chunks stay on dense rows; steps of many chunks
    // may not fit.
    rows = std::max(rows, c.window_size + max_tokens +
                              (min_ratio > 0 ? (max_length + min_ratio - 1) / min_ratio : 0));
  }
  row_counts_.assign(ratios_.size(), 0);
  if (rows > 0) {
    rows_ = DeviceBuffer<uint16_t>(size_t(rows * head_dim_));
  }
}

int64_t DenseAttentionRows::plan_step(int32_t* meta, int64_t max_tokens, int64_t first_block,
                                      int32_t tokens, bool decode_only) {
  std::fill(row_counts_.begin(), row_counts_.end(), 0);
  window_rows_ = 0;
  layers_ = 0;
  const auto block = [&](int64_t b) { return std::span<int32_t>(meta + b * max_tokens, tokens); };
  const auto fits = [&](int64_t rows) { return rows * head_dim_ <= int64_t(rows_.size()); };
  if (decode_only) {
    if (!hca_decode_) return 0;
    const int64_t rows = dense_rows_layout(block(2), block(3), block(4), window_, 0,
                                           block(first_block + int64_t(ratios_.size())));
    if (fits(rows)) window_rows_ = rows;
    // Counted here: a decode step's layers run from a graph, without apply().
    layers_ = window_rows_ > 0 ? hca_layers_ : 0;
    return meta_blocks();
  }
  if (ratios_.empty() || tokens < min_tokens_) return 0;
  for (size_t r = 0; r < ratios_.size(); ++r) {
    const int64_t rows = dense_rows_layout(block(2), block(3), block(4), window_, ratios_[r],
                                           block(first_block + int64_t(r)));
    if (fits(rows)) row_counts_[r] = rows;
  }
  return int64_t(ratios_.size());
}

void DenseAttentionRows::apply(SparseAttentionArgs& args, int32_t layer, int32_t ratio,
                               const KvCache& cache, const int32_t* meta, int64_t max_tokens,
                               int64_t first_block) {
  if (window_rows_ > 0) {
    const PagedRowsView copies = cache.dense_entry_rows(layer);
    if (!copies.pool || args.source != CompressedSource::kAll) return;
    args.dense = {rows_.data(), meta + (first_block + int64_t(ratios_.size())) * max_tokens,
                  ratio,        window_rows_,
                  copies,       cache.dense_entry_pool_rows()};
    return;
  }
  for (size_t r = 0; r < ratios_.size(); ++r) {
    if (ratios_[r] != ratio || row_counts_[r] == 0 || !sparse_attention_dense_rows_pay(args)) {
      continue;
    }
    args.dense = {
        rows_.data(), meta + (first_block + int64_t(r)) * max_tokens, ratio, row_counts_[r], {}, 0};
    ++layers_;
  }
}

}  // namespace dsv4::cuda
