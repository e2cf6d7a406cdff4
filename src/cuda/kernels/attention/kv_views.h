// Plain views of the paged attention state and of a step's token batch, passed by value to
// the attention, compressor and indexer kernels (header-only, no CUDA types, so that C++
// code, the kernels and other kernel domains share them).
//
// Paged rows: a pool of fixed-size blocks, `block_rows` rows of `row_bytes` bytes each; a
// sequence's logical row r lives in block table[slot · table_stride + r / block_rows] at row
// r % block_rows. Row kinds: KV rows (KvRowFormat bytes: the sliding-window ring, slot =
// position % window, and the compressed entries, entry w at row w) and index keys
// (IndexKeyFormat bytes, key w at row w).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DSV4_HOST_DEVICE __host__ __device__
#else
#define DSV4_HOST_DEVICE
#endif

namespace dsv4::cuda {

struct PagedRowsView {
  uint8_t* pool = nullptr;
  const int32_t* table = nullptr;  // device
  int64_t table_stride = 0;        // table entries between consecutive sequence slots
  int32_t block_rows = 0;
  int32_t row_bytes = 0;

  DSV4_HOST_DEVICE uint8_t* row(int32_t slot, int64_t index) const {
    const int64_t block = table[slot * table_stride + index / block_rows];
    return pool + (block * block_rows + index % block_rows) * int64_t(row_bytes);
  }
};

// One entry per token of the step, all device arrays of `tokens` values. The tokens of one
// sequence form one chunk: consecutive positions at consecutive batch indices.
struct TokenBatchView {
  int32_t tokens = 0;
  const int32_t* slot = nullptr;         // the sequence's cache slot
  const int32_t* position = nullptr;     // position in the sequence
  const int32_t* chunk_begin = nullptr;  // batch index of the first token of its chunk
  const int32_t* chunk_end = nullptr;    // batch index one past the last token of its chunk
};

// A compressor's partial windows for every slot, fp32: [slot][buffer][ratio][width] kv
// projections and, at the same offsets, gate logits with the position bias added. Window w
// lives in buffer w % buffers (2 for overlapping compressors: previous and current window;
// 1 otherwise). Reset to kv = 0, gate = -inf at admission ("no previous window").
struct CompressorStateView {
  float* kv = nullptr;
  float* gate = nullptr;
  int64_t sequence_stride = 0;  // floats per slot: buffers · ratio · width
  int32_t buffers = 0;
};

}  // namespace dsv4::cuda
