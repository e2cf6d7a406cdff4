#include "cpu/chunked_run.h"

#include "core/error.h"

namespace dsv4::cpu {

void validate_chunks(size_t id_count, const std::vector<int32_t>& chunk_sizes) {
  int64_t total = 0;
  for (int32_t size : chunk_sizes) {
    if (size <= 0) fail("--chunks: sizes must be positive, got {}", size);
    total += size;
  }
  if (total > int64_t(id_count)) {
    fail("--chunks: the chunks hold {} ids but there are only {}", total, id_count);
  }
}

std::vector<float> run_chunked(Model& model, const std::vector<int32_t>& ids,
                               const std::vector<int32_t>& chunk_sizes) {
  validate_chunks(ids.size(), chunk_sizes);
  auto sequence = model.new_sequence();
  std::vector<float> logits;
  size_t fed = 0;
  const auto feed = [&](size_t count) {
    const Model::Chunk chunk{sequence.get(), std::span(ids).subspan(fed, count)};
    const std::vector<float> part = model.forward(std::span(&chunk, 1));
    logits.insert(logits.end(), part.begin(), part.end());
    fed += count;
  };
  for (int32_t size : chunk_sizes) feed(size_t(size));
  while (fed < ids.size()) feed(1);
  return logits;
}

}  // namespace dsv4::cpu
