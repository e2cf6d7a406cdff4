#include <chrono>
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "cpu/model.h"
#include "engine/sampler.h"
#include "model/model_source.h"

namespace dsv4::cli {
namespace {

struct GenerateOptions {
  std::string model, ids, backend = "cpu", numerics = "official";
  int64_t max_tokens = 32;
  SamplingParams sampling;
  int32_t eos_id = 1;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Command add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  app.add_option("--model", options->model, "Model directory or synthetic:NAME")->required();
  app.add_option("--ids", options->ids, "Prompt as comma-separated token ids")->required();
  app.add_option("--max-tokens", options->max_tokens, "Tokens to generate")
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", options->sampling.temperature, "0 = greedy");
  app.add_option("--top-p", options->sampling.top_p, "Nucleus sampling mass");
  app.add_option("--seed", options->sampling.seed, "Sampling seed");
  app.add_option("--numerics", options->numerics, "official | fp32");
  app.add_option("--backend", options->backend, "cpu | cuda");
  app.add_option("--eos-id", options->eos_id, "Stop after this token id");
  return [options] {
    require_cpu_backend(options->backend);
    const Numerics numerics = parse_numerics(options->numerics);
    const std::vector<int32_t> prompt = parse_id_list(options->ids, "--ids");
    Sampler sampler(options->sampling);
    const LoadedModel loaded = load_model(options->model);
    std::fprintf(stderr, "%s\n", loaded.description.c_str());
    cpu::Model model(loaded.config, loaded.weights, numerics);
    auto sequence = model.new_sequence();

    const auto prefill_start = std::chrono::steady_clock::now();
    cpu::Model::Chunk chunk{sequence.get(), prompt};
    std::vector<float> logits = model.forward(std::span(&chunk, 1));
    const double prefill_seconds = seconds_since(prefill_start);
    const auto vocab = size_t(loaded.config.vocab_size);

    // Decode speed counts the one-token forward passes only.
    double decode_seconds = 0.0;
    int64_t generated = 0, decode_steps = 0;
    while (generated < options->max_tokens) {
      const std::span<const float> last(logits.data() + logits.size() - vocab, vocab);
      const int32_t next = sampler.sample(last);
      ++generated;
      std::printf("%d\n", next);
      std::fflush(stdout);
      if (next == options->eos_id || generated == options->max_tokens) break;
      const auto step_start = std::chrono::steady_clock::now();
      chunk = {sequence.get(), std::span(&next, 1)};
      logits = model.forward(std::span(&chunk, 1));
      decode_seconds += seconds_since(step_start);
      ++decode_steps;
    }
    std::fprintf(stderr,
                 "prefill: %zu tokens in %.3f s (%.1f tok/s); decode: %lld steps in %.3f s "
                 "(%.1f tok/s)\n",
                 prompt.size(), prefill_seconds, double(prompt.size()) / prefill_seconds,
                 static_cast<long long>(decode_steps), decode_seconds,
                 decode_steps ? double(decode_steps) / decode_seconds : 0.0);
  };
}

}  // namespace dsv4::cli
