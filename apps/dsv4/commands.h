// The dsv4 command line: each command registers its options on the app and returns the
// function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dsv4::cli {

using Command = std::function<void()>;

Command add_logits_command(CLI::App& app);
Command add_generate_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_detokenize_command(CLI::App& app);
Command add_chat_command(CLI::App& app);
Command add_bench_command(CLI::App& app);

// "5,9,12" -> {5, 9, 12}; `option` names the flag in error messages.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option);
// Fails with a one-line message unless `backend` is one this build and machine can run (so
// that a bad --backend fails before a model is loaded).
void require_backend(const std::string& backend);

}  // namespace dsv4::cli
