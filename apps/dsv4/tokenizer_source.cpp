#include "tokenizer_source.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "model/model_source.h"

namespace dsv4::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBundledTokenizer = "tokenizer/deepseek-v3";

fs::path executable_dir() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  return error ? fs::path() : exe.parent_path();
}

// DSV4_ASSET_DIR, then assets/ beside the source tree the binary was built from (build/dsv4 ->
// ../assets), then the directory compiled in.
fs::path bundled_tokenizer_dir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("DSV4_ASSET_DIR")) candidates.emplace_back(env);
  if (const fs::path exe = executable_dir(); !exe.empty()) {
    candidates.push_back(exe.parent_path() / "assets");
    candidates.push_back(exe.parent_path() / "share" / "dsv4" / "assets");
  }
  candidates.emplace_back(DSV4_SOURCE_ASSET_DIR);
  for (const fs::path& dir : candidates) {
    if (fs::exists(dir / kBundledTokenizer / "tokenizer.json")) return dir / kBundledTokenizer;
  }
  fail(
      "the bundled DeepSeek tokenizer was not found (looked for {}/tokenizer.json under "
      "$DSV4_ASSET_DIR, {} and {}); pass --tokenizer PATH",
      kBundledTokenizer, (executable_dir().parent_path() / "assets").string(),
      DSV4_SOURCE_ASSET_DIR);
}

}  // namespace

Tokenizer load_tokenizer_for(const std::string& model_spec, const std::string& explicit_path) {
  if (!explicit_path.empty()) return Tokenizer::load(explicit_path);
  if (model_spec.rfind(kSyntheticSpecPrefix, 0) == 0)
    return Tokenizer::load(bundled_tokenizer_dir());
  if (!fs::exists(fs::path(model_spec) / "tokenizer.json")) {
    fail("{}: no tokenizer.json in the model directory; pass --tokenizer PATH", model_spec);
  }
  return Tokenizer::load(model_spec);
}

}  // namespace dsv4::cli
