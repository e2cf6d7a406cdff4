// Split behaviours and ByteLevel options of the pre-tokenizer, with the pieces HF tokenizers
// gives for them (HF's documentation example "the-final--countdown").
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/pre_tokenizer.h"

namespace dsv4 {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(const nlohmann::json& config, std::string_view text) {
  const PreTokenizer pre_tokenizer(config, "test");
  PreTokenizerScratch scratch;
  std::vector<std::string_view> pieces;
  pre_tokenizer.split(text, scratch, pieces);
  return Pieces(pieces.begin(), pieces.end());
}

nlohmann::json byte_level(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", use_regex}};
}

nlohmann::json split_on_dash(const std::string& behavior, bool invert) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"String", "-"}}},
             {"behavior", behavior},
             {"invert", invert}},
            byte_level(false, false)}}};
}

TEST(PreTokenizer, SplitBehaviors) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(split(split_on_dash("Removed", false), text), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(split(split_on_dash("Removed", true), text), (Pieces{"-", "-", "-"}));
  for (const bool invert : {false, true}) {
    EXPECT_EQ(split(split_on_dash("Isolated", invert), text),
              (Pieces{"the", "-", "final", "-", "-", "countdown"}));
    EXPECT_EQ(split(split_on_dash("Contiguous", invert), text),
              (Pieces{"the", "-", "final", "--", "countdown"}));
  }
  EXPECT_EQ(split(split_on_dash("MergedWithPrevious", false), text),
            (Pieces{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(split_on_dash("MergedWithPrevious", true), text),
            (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(split_on_dash("MergedWithNext", false), text),
            (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(split_on_dash("MergedWithNext", true), text),
            (Pieces{"the-", "final-", "-", "countdown"}));
}

TEST(PreTokenizer, EmptyMatchesLeaveNoPieces) {
  const nlohmann::json config = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", R"(\d+|x*)"}}}, {"behavior", "Isolated"}},
        byte_level(false, false)}}};
  EXPECT_EQ(split(config, "ab12c"), (Pieces{"a", "b", "12", "c"}));
  EXPECT_TRUE(split(config, "").empty());
}

TEST(PreTokenizer, ByteLevelRegexAndPrefixSpace) {
  EXPECT_EQ(split(byte_level(true, true), "Hello world's 123!!  x"),
            (Pieces{" Hello", " world", "'s", " 123", "!!", " ", " x"}));
  const nlohmann::json digits_then_prefix = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", R"(\d)"}}}, {"behavior", "Isolated"}},
        byte_level(true, false)}}};
  EXPECT_EQ(split(digits_then_prefix, "a1b 2"), (Pieces{" a", " 1", " b ", " 2"}));
}

TEST(PreTokenizer, ByteLevelIsRequiredAndLast) {
  EXPECT_THROW(
      split({{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Isolated"}}, "a"),
      Error);
  const nlohmann::json after = {
      {"type", "Sequence"},
      {"pretokenizers",
       {byte_level(false, false),
        {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Isolated"}}}}};
  EXPECT_THROW(split(after, "a"), Error);
  EXPECT_THROW(split(split_on_dash("Sideways", false), "a"), Error);
}

}  // namespace
}  // namespace dsv4
