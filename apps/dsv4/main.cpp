#include <cstdio>
#include <exception>
#include <map>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"dsv4: DeepSeek-V4 inference engine"};
  app.require_subcommand(1);
  std::map<CLI::App*, dsv4::cli::Command> commands;
  const auto add = [&](dsv4::cli::Command (*factory)(CLI::App&), const char* name,
                       const char* help) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = factory(*sub);
  };
  add(dsv4::cli::add_logits_command, "logits", "Write the logits after every position to .npy");
  add(dsv4::cli::add_generate_command, "generate", "Generate tokens from a prompt");
  add(dsv4::cli::add_chat_command, "chat", "Chat in the terminal");
  add(dsv4::cli::add_tokenize_command, "tokenize", "Text to comma-separated token ids");
  add(dsv4::cli::add_detokenize_command, "detokenize", "Token ids to text");
  add(dsv4::cli::add_inspect_command, "inspect", "Describe a model: config, tensors, memory");
  add(dsv4::cli::add_bench_command, "bench", "Time decode steps on random weights (CUDA)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) commands.at(sub)();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsv4: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
