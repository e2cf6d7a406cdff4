// `dsv4 chat`: an interactive terminal conversation. Lines starting with '/' are commands;
// Ctrl-C stops the reply being generated (and quits at the prompt).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.h"
#include "generation_session.h"
#include "model/model_source.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/chat_parsing.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer_source.h"

namespace dsv4::cli {
namespace {

std::atomic<bool> generating{false};
std::atomic<bool> stop_requested{false};

void on_interrupt(int) {
  if (generating.load()) {
    stop_requested.store(true);
    return;
  }
  const char bye[] = "\n";
  [[maybe_unused]] const ssize_t written = write(STDOUT_FILENO, bye, sizeof(bye) - 1);
  _exit(130);
}

struct ChatOptions {
  std::string model, tokenizer, system, numerics = "official", backend = "cpu";
  int64_t max_length = 16384;
  int64_t max_tokens = 512;
  SamplingParams sampling{0.7f, 0.95f, 0};
  bool think = false;
};

const char* kHelp =
    "commands: /think on|off (reasoning before answering), /reset (forget the conversation), "
    "/quit. Ctrl-C stops a reply.";

ChatMessage message(ChatRole role, std::string content) {
  ChatMessage m;
  m.role = role;
  m.content = std::move(content);
  return m;
}

}  // namespace

Command add_chat_command(CLI::App& app) {
  auto options = std::make_shared<ChatOptions>();
  app.add_option("--model", options->model, "Model directory or synthetic:NAME")->required();
  app.add_option("--tokenizer", options->tokenizer, "tokenizer.json or its directory");
  app.add_option("--system", options->system, "System prompt");
  app.add_option("--max-tokens", options->max_tokens, "Longest reply")->check(CLI::PositiveNumber);
  app.add_option("--temperature", options->sampling.temperature, "0 = greedy");
  app.add_option("--top-p", options->sampling.top_p, "Nucleus sampling mass");
  app.add_option("--seed", options->sampling.seed, "Sampling seed");
  app.add_flag("--think", options->think, "Start in thinking mode");
  app.add_option("--numerics", options->numerics, "official | fp32");
  app.add_option("--backend", options->backend, "cpu | cuda");
  app.add_option("--max-length", options->max_length,
                 "Longest conversation in tokens (sizes the CUDA KV cache)")
      ->check(CLI::PositiveNumber);
  return [options] {
    require_backend(options->backend);
    const Numerics numerics = parse_numerics(options->numerics);
    Sampler sampler(options->sampling);
    const Tokenizer tokenizer = load_tokenizer_for(options->model, options->tokenizer);
    const LoadedModel loaded = load_model(options->model);
    const auto runner =
        make_sequence_runner(options->backend, loaded, numerics,
                             std::min(options->max_length, loaded.config.max_seq_len));
    GenerationSession session(*runner, tokenizer.vocab_size());

    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigaction(SIGINT, &action, nullptr);

    std::printf("%s\n%s\n", loaded.description.c_str(), kHelp);
    std::vector<ChatMessage> messages;
    if (!options->system.empty()) messages.push_back(message(ChatRole::system, options->system));
    const size_t base = messages.size();
    bool think = options->think;
    std::string line;
    for (;;) {
      std::printf("\n%s> ", think ? "[think] " : "");
      std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
      if (line == "/quit" || line == "/exit") break;
      if (line == "/think on" || line == "/think off") {
        think = line == "/think on";
        std::printf("thinking %s\n", think ? "on" : "off");
        continue;
      }
      if (line == "/reset") {
        messages.resize(base);
        std::printf("conversation cleared\n");
        continue;
      }
      if (line[0] == '/') {
        std::printf("%s\n", kHelp);
        continue;
      }
      messages.push_back(message(ChatRole::user, line));
      ChatEncodeOptions encode;
      encode.mode = think ? ThinkingMode::thinking : ThinkingMode::chat;
      const std::vector<int32_t> prompt = tokenizer.encode(encode_chat(messages, encode));

      StreamingDetokenizer detokenizer(tokenizer, true);
      std::string reply;
      stop_requested.store(false);
      generating.store(true);
      const GenerationStats stats = session.generate(
          prompt, options->max_tokens, sampler, {tokenizer.eos_id()},
          [&](int32_t id) {
            const std::string piece = detokenizer.push(id);
            reply += tokenizer.decode(std::span(&id, 1));
            std::fputs(piece.c_str(), stdout);
            std::fflush(stdout);
          },
          &stop_requested);
      generating.store(false);
      std::fputs(detokenizer.finish().c_str(), stdout);

      ParseOptions parse;
      parse.allow_truncated = true;
      const ParsedCompletion parsed = parse_completion(reply, encode.mode, parse);
      ChatMessage answer = message(ChatRole::assistant, parsed.content);
      answer.reasoning_content = parsed.reasoning_content;
      answer.tool_calls = parsed.tool_calls;
      messages.push_back(answer);
      std::printf("\n[%s%lld tokens, %.1f tok/s]\n", stats.interrupted ? "stopped, " : "",
                  static_cast<long long>(stats.generated),
                  stats.decode_steps ? double(stats.decode_steps) / stats.decode_seconds : 0.0);
    }
  };
}

}  // namespace dsv4::cli
