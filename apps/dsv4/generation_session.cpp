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
  const auto prefill_start = std::chrono::steady_clock::now();
  std::vector<float> logits = model_.feed(fresh);
  stats.prefill_seconds = seconds_since(prefill_start);
  fed_.insert(fed_.end(), fresh.begin(), fresh.end());

  const auto vocab = size_t(model_.config().vocab_size);
  while (stats.generated < max_tokens) {
    if (stop && stop->load()) {
      stats.interrupted = true;
      break;
    }
    const int32_t next = sampler.sample(std::span(logits).last(vocab).first(sampling_vocab_));
    ++stats.generated;
    on_token(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end() ||
        stats.generated == max_tokens) {
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    logits = model_.feed(std::span(&next, 1));
    stats.decode_seconds += seconds_since(step_start);
    ++stats.decode_steps;
    fed_.push_back(next);
  }
  return stats;
}

}  // namespace dsv4::cli
