#include "generation_session.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace dsv4::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

GenerationSession::GenerationSession(SequenceRunner& model, size_t sampling_vocab)
    : model_(model),
      sampling_vocab_(sampling_vocab == 0
                          ? size_t(model.config().vocab_size)
                          : std::min(sampling_vocab, size_t(model.config().vocab_size))) {}

GenerationStats GenerationSession::generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                            Sampler& sampler, const std::vector<int32_t>& stop_ids,
                                            const std::function<void(int32_t)>& on_token,
                                            const std::atomic<bool>* stop) {
  if (prompt.empty()) fail("the prompt is empty");
  // The state can only grow: reuse it when the prompt extends what was fed, else start over.
  const bool extends =
      prompt.size() > fed_.size() && std::equal(fed_.begin(), fed_.end(), prompt.begin());
  if (!extends) {
    model_.restart();
    fed_.clear();
  }
  GenerationStats stats;
  const std::vector<int32_t> fresh(prompt.begin() + std::ptrdiff_t(fed_.size()), prompt.end());
  stats.prompt_tokens = int64_t(fresh.size());
  if (max_tokens <= 0) return stats;
  const auto prefill_start = std::chrono::steady_clock::now();
  int32_t next = model_.feed_and_sample(fresh, sampler, sampling_vocab_);
  stats.prefill_seconds = seconds_since(prefill_start);
  fed_.insert(fed_.end(), fresh.begin(), fresh.end());

  while (true) {
    if (stop && stop->load()) {
      stats.interrupted = true;
      break;
    }
    ++stats.generated;
    on_token(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end() ||
        stats.generated == max_tokens) {
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    const int32_t fed = next;
    next = model_.feed_and_sample(std::span(&fed, 1), sampler, sampling_vocab_);
    stats.decode_seconds += seconds_since(step_start);
    ++stats.decode_steps;
    fed_.push_back(fed);
  }
  return stats;
}

}  // namespace dsv4::cli
