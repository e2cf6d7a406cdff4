#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, file, text;
};

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("--file: cannot read '{}'", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

}  // namespace

Command add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  app.add_option("--tokenizer", options->tokenizer, "tokenizer.json or a model directory")
      ->required();
  auto* file = app.add_option("--file", options->file, "Read the text from this file");
  auto* text = app.add_option("text", options->text, "The text to tokenize");
  file->excludes(text);
  return [options] {
    const Tokenizer tokenizer = Tokenizer::load(options->tokenizer);
    const std::string input = options->file.empty() ? options->text : read_file(options->file);
    std::string out;
    for (const TokenId id : tokenizer.encode(input)) {
      if (!out.empty()) out.push_back(',');
      out.append(std::to_string(id));
    }
    std::printf("%s\n", out.c_str());
  };
}

Command add_detokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  app.add_option("--tokenizer", options->tokenizer, "tokenizer.json or a model directory")
      ->required();
  app.add_option("--ids", options->text, "Comma-separated token ids")->required();
  return [options] {
    const Tokenizer tokenizer = Tokenizer::load(options->tokenizer);
    const std::vector<int32_t> ids = parse_id_list(options->text, "--ids");
    std::printf("%s\n", tokenizer.decode(ids).c_str());
  };
}

}  // namespace dsv4::cli
