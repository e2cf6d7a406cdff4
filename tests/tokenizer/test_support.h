// Shared by the tokenizer tests: the bundled DeepSeek tokenizer (loaded once per test binary)
// and the golden files in tests/data/tokenizer/.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace dsv4::testing {

inline std::filesystem::path test_data_dir() {
  return DSV4_TEST_DATA_DIR "/tokenizer";
}

inline std::filesystem::path bundled_tokenizer_dir() {
  return std::filesystem::path(DSV4_TEST_DATA_DIR) / ".." / ".." / "assets" / "tokenizer" /
         "deepseek-v3";
}

inline const Tokenizer& deepseek_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(bundled_tokenizer_dir());
  return tokenizer;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(file);
}

}  // namespace dsv4::testing
