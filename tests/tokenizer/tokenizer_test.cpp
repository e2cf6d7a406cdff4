// The Tokenizer API on the bundled DeepSeek tokenizer: special tokens, lookups, and the errors
// the CLI shows (each naming the file, the id or the byte at fault).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "test_support.h"

namespace dsv4 {
namespace {

// The message of the Error `body` throws, or "" when it throws none.
template <typename Body>
std::string error_of(Body&& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dsv4_tokenizer_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(Tokenizer, KnownIds) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  EXPECT_EQ(tokenizer.encode("你好"), std::vector<TokenId>{30594});
  EXPECT_EQ(tokenizer.bos_id(), 0);
  EXPECT_EQ(tokenizer.eos_id(), 1);
  EXPECT_EQ(tokenizer.token_to_id("<｜User｜>"), 128803);
  EXPECT_EQ(tokenizer.token_to_id("<｜Assistant｜>"), 128804);
  EXPECT_EQ(tokenizer.token_to_id("Ġthe"), 270);
  EXPECT_EQ(tokenizer.token_to_id("no such token"), std::nullopt);
  EXPECT_EQ(tokenizer.id_to_token(128803), "<｜User｜>");
  EXPECT_EQ(tokenizer.vocab_size(), 128815u);
  EXPECT_TRUE(tokenizer.is_special(1));
  EXPECT_FALSE(tokenizer.is_special(128803));  // <｜User｜> is an added token, not a special one
  EXPECT_TRUE(tokenizer.encode("").empty());
}

TEST(Tokenizer, SpecialTokensInsideText) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  const std::string text = "<｜begin▁of▁sentence｜>Hi<｜User｜>x<｜end▁of▁sentence｜>";
  const std::vector<TokenId> ids = tokenizer.encode(text);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 1);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 128803), ids.end());
  EXPECT_EQ(tokenizer.decode(ids), text);
  EXPECT_EQ(tokenizer.decode(ids, /*skip_special=*/true), "Hi<｜User｜>x");

  // Unparsed, special tokens are text; non-special added tokens are still matched.
  const std::vector<TokenId> as_text = tokenizer.encode(text, /*parse_special=*/false);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 0), 0);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 1), 0);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 128803), 1);
  EXPECT_EQ(tokenizer.decode(as_text), text);
}

TEST(Tokenizer, TokenBytesArePartialUtf8) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  std::string joined;
  for (const TokenId id : tokenizer.encode("🙂")) joined += tokenizer.token_bytes(id);
  EXPECT_EQ(joined, "🙂");
  EXPECT_EQ(tokenizer.token_bytes(128804), "<｜Assistant｜>");
}

TEST(Tokenizer, LoadsFromDirectoryOrFile) {
  const Tokenizer from_file = Tokenizer::load(testing::bundled_tokenizer_dir() / "tokenizer.json");
  EXPECT_EQ(from_file.encode("Hello world"), testing::deepseek_tokenizer().encode("Hello world"));
  EXPECT_EQ(from_file.eos_id(), 1);  // tokenizer_config.json is found beside the file
}

TEST(Tokenizer, UnknownIdIsNamed) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  const std::vector<TokenId> ids = {5, 200000};
  EXPECT_NE(error_of([&] { tokenizer.decode(ids); }).find("200000"), std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.id_to_token(-1); }).find("-1"), std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.token_bytes(128815); }).find("128815"), std::string::npos);
}

TEST(Tokenizer, InvalidUtf8InputIsRejected) {
  const std::string message = error_of([] { testing::deepseek_tokenizer().encode("ab\xC3(x"); });
  EXPECT_NE(message.find("UTF-8"), std::string::npos);
  EXPECT_NE(message.find("byte 2"), std::string::npos);
}

TEST(Tokenizer, MissingFileIsNamed) {
  const std::string missing = "/nonexistent/dir/tokenizer.json";
  EXPECT_NE(error_of([&] { Tokenizer::load(missing); }).find(missing), std::string::npos);
  const auto empty_dir = scratch_dir("empty");
  EXPECT_NE(error_of([&] { Tokenizer::load(empty_dir); }).find(empty_dir.string()),
            std::string::npos);
  std::filesystem::remove_all(empty_dir);
}

TEST(Tokenizer, MalformedJsonIsNamed) {
  const auto dir = scratch_dir("malformed");
  write_file(dir / "tokenizer.json", "{\"model\": {\"vocab\": ");
  const std::string message = error_of([&] { Tokenizer::load(dir); });
  EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos);
  EXPECT_NE(message.find("malformed JSON"), std::string::npos);

  // Well-formed JSON that is not a tokenizer names the file too.
  write_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}");
  EXPECT_NE(error_of([&] { Tokenizer::load(dir); }).find("tokenizer.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, UnsupportedFeaturesAreNamed) {
  const nlohmann::json bundled =
      testing::read_json(testing::bundled_tokenizer_dir() / "tokenizer.json");
  nlohmann::json changed = bundled;
  changed["normalizer"] = {{"type", "NFKC"}};
  EXPECT_NE(error_of([&] { Tokenizer::from_json(changed.dump(), "", "t.json"); }).find("NFKC"),
            std::string::npos);
  changed = bundled;
  changed["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(
      error_of([&] { Tokenizer::from_json(changed.dump(), "", "t.json"); }).find("Whitespace"),
      std::string::npos);
  changed = bundled;
  changed["model"]["type"] = "WordPiece";
  EXPECT_NE(error_of([&] { Tokenizer::from_json(changed.dump(), "", "t.json"); }).find("WordPiece"),
            std::string::npos);
}

TEST(Tokenizer, BosAndEosNeedAConfig) {
  const nlohmann::json bundled =
      testing::read_json(testing::bundled_tokenizer_dir() / "tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::from_json(bundled.dump(), "", "bare.json");
  EXPECT_NE(error_of([&] { tokenizer.bos_id(); }).find("bare.json"), std::string::npos);
  EXPECT_NE(error_of([&] {
              Tokenizer::from_json(bundled.dump(), "{\"eos_token\": \"<nope>\"}", "bare.json");
            }).find("<nope>"),
            std::string::npos);
}

}  // namespace
}  // namespace dsv4
