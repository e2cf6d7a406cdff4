// Encode throughput of the tokenizer on one thread, in MB/s of UTF-8 input: the whole text in
// one call, and paragraph by paragraph (the shape of chat prompts). tools/english_text.py
// writes the English-like text that tools/gen_tokenizer_corpus.py also times HF tokenizers on.
//
//   build/bench/dsv4_tokenizer_bench --tokenizer assets/tokenizer/deepseek-v3 --text english.txt

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) dsv4::fail("cannot open {}", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  return std::move(contents).str();
}

std::vector<std::string_view> paragraphs_of(std::string_view text) {
  std::vector<std::string_view> paragraphs;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = std::min(text.find("\n\n", begin), text.size());
    paragraphs.push_back(text.substr(begin, end - begin));
    begin = end + 2;
  }
  return paragraphs;
}

// FNV-1a over the ids' values, printed by the HF side too so the two runs can be compared.
uint64_t checksum(const std::vector<dsv4::TokenId>& ids) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (const dsv4::TokenId id : ids) {
    hash = (hash ^ static_cast<uint32_t>(id)) * 0x100000001B3ull;
  }
  return hash;
}

// The best of `repeats` timings of `body`, in seconds.
template <typename Body>
double best_time(int repeats, Body&& body) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const Clock::time_point start = Clock::now();
    body();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Single-thread encode throughput of the dsv4 tokenizer"};
  std::string tokenizer_path, text_path, ids_out;
  int repeats = 3;
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json or a directory holding one")
      ->required();
  app.add_option("--text", text_path, "UTF-8 text to encode (tools/english_text.py)")->required();
  app.add_option("--repeat", repeats, "timed runs; the best one counts");
  app.add_option("--ids-out", ids_out, "write the whole text's ids here as int32 little-endian");
  CLI11_PARSE(app, argc, argv);

  try {
    Clock::time_point start = Clock::now();
    const dsv4::Tokenizer tokenizer = dsv4::Tokenizer::load(tokenizer_path);
    fmt::print("load: {:.3f} s ({})\n", seconds_since(start), tokenizer.source());
    const std::string text = read_text(text_path);
    const double megabytes = static_cast<double>(text.size()) / 1e6;

    // A first pass fills the piece cache, as HF's BPE cache is filled by its warm-up.
    start = Clock::now();
    std::vector<dsv4::TokenId> ids = tokenizer.encode(text);
    fmt::print("first pass: {:.1f} MB/s\n", megabytes / seconds_since(start));

    const double whole = best_time(repeats, [&] { ids = tokenizer.encode(text); });
    fmt::print("whole text: {:.1f} MB/s ({:.2f} MB, {} tokens, checksum {:016x})\n",
               megabytes / whole, megabytes, ids.size(), checksum(ids));

    const std::vector<std::string_view> paragraphs = paragraphs_of(text);
    size_t paragraph_tokens = 0;
    double paragraph_megabytes = 0;
    for (const auto paragraph : paragraphs) {
      paragraph_megabytes += static_cast<double>(paragraph.size()) / 1e6;
    }
    const double per_paragraph = best_time(repeats, [&] {
      paragraph_tokens = 0;
      for (const auto paragraph : paragraphs)
        paragraph_tokens += tokenizer.encode(paragraph).size();
    });
    fmt::print("per paragraph: {:.1f} MB/s ({} paragraphs, {} tokens)\n",
               paragraph_megabytes / per_paragraph, paragraphs.size(), paragraph_tokens);

    if (!ids_out.empty()) {
      std::ofstream out(ids_out, std::ios::binary);
      out.write(reinterpret_cast<const char*>(ids.data()),
                static_cast<std::streamsize>(ids.size() * sizeof(dsv4::TokenId)));
      if (!out) dsv4::fail("cannot write {}", ids_out);
    }
  } catch (const dsv4::Error& error) {
    fmt::print(stderr, "dsv4_tokenizer_bench: {}\n", error.what());
    return 1;
  }
  return 0;
}
