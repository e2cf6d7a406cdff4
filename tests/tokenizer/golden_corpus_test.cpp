// Ids and decoded text identical to Hugging Face tokenizers on the golden corpus that
// tools/gen_tokenizer_corpus.py made with it.
#include <gtest/gtest.h>

#include "test_support.h"

namespace dsv4 {
namespace {

const nlohmann::json& corpus() {
  static const nlohmann::json json =
      testing::read_json(testing::test_data_dir() / "tokenizer_corpus.json");
  return json;
}

std::string printable(const std::string& text) {
  const std::string shown = nlohmann::json(text).dump();
  return shown.size() > 200 ? shown.substr(0, 200) + "..." : shown;
}

// Where two id sequences part, with the tokens around that point, for a readable failure.
std::string first_difference(const Tokenizer& tokenizer, const std::vector<TokenId>& actual,
                             const std::vector<TokenId>& expected) {
  size_t at = 0;
  while (at < actual.size() && at < expected.size() && actual[at] == expected[at]) ++at;
  const auto tokens_from = [&](const std::vector<TokenId>& ids) {
    std::string shown;
    for (size_t i = at; i < ids.size() && i < at + 6; ++i) {
      shown += std::to_string(ids[i]) + "=" + printable(tokenizer.id_to_token(ids[i])) + " ";
    }
    return shown;
  };
  return "first difference at id #" + std::to_string(at) + ": got " + tokens_from(actual) +
         "; HF has " + tokens_from(expected);
}

TEST(GoldenCorpus, EncodesEveryTextToHfIds) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  size_t checked = 0;
  for (const auto& entry : corpus().at("encode")) {
    const auto text = entry.at("text").get<std::string>();
    const bool parse_special = entry.value("parse_special", true);
    const auto expected = entry.at("ids").get<std::vector<TokenId>>();
    const std::vector<TokenId> actual = tokenizer.encode(text, parse_special);
    EXPECT_TRUE(actual == expected)
        << "text " << printable(text) << (parse_special ? "" : " (special tokens as text)") << "\n"
        << first_difference(tokenizer, actual, expected);
    ++checked;
  }
  EXPECT_GT(checked, 400u);
}

TEST(GoldenCorpus, DecodingRoundTrips) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  for (const auto& entry : corpus().at("encode")) {
    const auto text = entry.at("text").get<std::string>();
    EXPECT_EQ(tokenizer.decode(entry.at("ids").get<std::vector<TokenId>>()), text)
        << "text " << printable(text);
  }
}

TEST(GoldenCorpus, DecodesLikeHf) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  for (const auto& entry : corpus().at("decode")) {
    const auto ids = entry.at("ids").get<std::vector<TokenId>>();
    const bool skip_special = entry.at("skip_special").get<bool>();
    EXPECT_EQ(tokenizer.decode(ids, skip_special), entry.at("text").get<std::string>())
        << "ids " << nlohmann::json(ids).dump() << (skip_special ? " skipping special" : "");
  }
}

// A tiny tokenizer whose added tokens use every option and whose file leaves gaps in their ids.
TEST(GoldenCorpus, AddedTokenOptionsAndIdsLikeHf) {
  const auto& added = corpus().at("added_tokens");
  const Tokenizer tokenizer =
      Tokenizer::from_json(added.at("tokenizer").dump(), "", "added_tokens tokenizer");
  for (const auto& entry : added.at("cases")) {
    const auto text = entry.at("text").get<std::string>();
    const bool parse_special = entry.at("parse_special").get<bool>();
    EXPECT_EQ(tokenizer.encode(text, parse_special), entry.at("ids").get<std::vector<TokenId>>())
        << "text " << printable(text) << (parse_special ? "" : " (special tokens as text)");
  }
}

}  // namespace
}  // namespace dsv4
