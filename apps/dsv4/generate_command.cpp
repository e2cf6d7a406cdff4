#include <cstdio>
#include <optional>

#include "commands.h"
#include "core/error.h"
#include "generation_session.h"
#include "model/model_source.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer_source.h"

namespace dsv4::cli {
namespace {

struct GenerateOptions {
  std::string model, prompt, ids, tokenizer, backend = "cpu", numerics = "official";
  int64_t max_tokens = 64;
  SamplingParams sampling;
  bool ignore_eos = false;
};

void print_stats(const GenerationStats& stats) {
  std::fprintf(stderr,
               "\nprefill: %lld tokens in %.3f s (%.1f tok/s); decode: %lld tokens in %.3f s "
               "(%.1f tok/s)\n",
               static_cast<long long>(stats.prompt_tokens), stats.prefill_seconds,
               double(stats.prompt_tokens) / stats.prefill_seconds,
               static_cast<long long>(stats.decode_steps), stats.decode_seconds,
               stats.decode_steps ? double(stats.decode_steps) / stats.decode_seconds : 0.0);
}

}  // namespace

Command add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  app.add_option("--model", options->model, "Model directory or synthetic:NAME")->required();
  auto* prompt = app.add_option("--prompt", options->prompt, "Prompt text (BOS is prepended)");
  auto* ids = app.add_option("--ids", options->ids, "Prompt as comma-separated token ids");
  prompt->excludes(ids);
  app.add_option("--tokenizer", options->tokenizer,
                 "tokenizer.json or its directory (default: the model's, or the bundled one)");
  app.add_option("--max-tokens", options->max_tokens, "Tokens to generate")
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", options->sampling.temperature, "0 = greedy");
  app.add_option("--top-p", options->sampling.top_p, "Nucleus sampling mass");
  app.add_option("--seed", options->sampling.seed, "Sampling seed");
  app.add_option("--numerics", options->numerics, "official | fp32");
  app.add_option("--backend", options->backend, "cpu | cuda");
  app.add_flag("--ignore-eos", options->ignore_eos, "Keep generating past the EOS token");
  return [options] {
    if (options->prompt.empty() == options->ids.empty())
      fail("give exactly one of --prompt or --ids");
    require_backend(options->backend);
    const Numerics numerics = parse_numerics(options->numerics);
    Sampler sampler(options->sampling);
    // --ids prints ids; --prompt streams text through the tokenizer.
    std::optional<Tokenizer> tokenizer;
    std::vector<int32_t> prompt_ids;
    if (options->ids.empty()) {
      tokenizer = load_tokenizer_for(options->model, options->tokenizer);
      prompt_ids = tokenizer->encode(options->prompt);
      prompt_ids.insert(prompt_ids.begin(), tokenizer->bos_id());
    } else {
      prompt_ids = parse_id_list(options->ids, "--ids");
    }
    const LoadedModel loaded = load_model(options->model);
    std::fprintf(stderr, "%s\n", loaded.description.c_str());
    const auto runner = make_sequence_runner(options->backend, loaded, numerics,
                                             int64_t(prompt_ids.size()) + options->max_tokens);
    GenerationSession session(*runner, tokenizer ? tokenizer->vocab_size() : 0);
    const int32_t eos = tokenizer ? tokenizer->eos_id() : 1;
    const std::vector<int32_t> stop_ids =
        options->ignore_eos ? std::vector<int32_t>{} : std::vector<int32_t>{eos};
    std::optional<StreamingDetokenizer> detokenizer;
    if (tokenizer) detokenizer.emplace(*tokenizer, true);
    const GenerationStats stats =
        session.generate(prompt_ids, options->max_tokens, sampler, stop_ids, [&](int32_t id) {
          if (detokenizer) {
            std::fputs(detokenizer->push(id).c_str(), stdout);
          } else {
            std::printf("%d\n", id);
          }
          std::fflush(stdout);
        });
    if (detokenizer) std::fputs((detokenizer->finish() + "\n").c_str(), stdout);
    print_stats(stats);
  };
}

}  // namespace dsv4::cli
