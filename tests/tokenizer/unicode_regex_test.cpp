// The Oniguruma-to-PCRE2 translation and Oniguruma's find_iter semantics.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/unicode_catchup.h"
#include "tokenizer/unicode_regex.h"

namespace dsv4 {
namespace {

std::vector<std::string> matches(std::string_view pattern, std::string_view text) {
  const UnicodeRegex regex(pattern);
  RegexScratch scratch;
  std::vector<TextSpan> spans;
  regex.find_all(text, scratch, spans);
  std::vector<std::string> found;
  for (const TextSpan& span : spans)
    found.emplace_back(text.substr(span.begin, span.end - span.begin));
  return found;
}

TEST(UnicodeRegex, WhiteSpaceIsOnigurumas) {
  // U+180E is a format character, not white space, since Unicode 6.3; PCRE2's \s still takes it.
  EXPECT_EQ(matches(R"(\s+)", "a\u180E b\u00A0\u3000c"),
            (std::vector<std::string>{" ", "\u00A0\u3000"}));
  EXPECT_EQ(matches(R"(\S+)", "a\u180E b"), (std::vector<std::string>{"a\u180E", "b"}));
  EXPECT_EQ(matches(R"([\s,]+)", "a, b"), (std::vector<std::string>{", "}));
}

TEST(UnicodeRegex, WordAndHexClassesAreOnigurumas) {
  // Oniguruma's \w takes combining marks; \h is a hexadecimal digit.
  EXPECT_EQ(matches(R"(\w+)", "e\u0301t\u00E9 x"),
            (std::vector<std::string>{"e\u0301t\u00E9", "x"}));
  EXPECT_EQ(matches(R"(\h+)", "zz0fA9 g"), (std::vector<std::string>{"0fA9"}));
}

TEST(UnicodeRegex, CategoriesKnowCharactersNewerThanPcre2) {
  // U+1FAE8 (Unicode 15.0) is a symbol and U+31350 (CJK Extension H) a letter, as in HF.
  EXPECT_EQ(matches(R"(\p{S})", "\U0001FAE8"), (std::vector<std::string>{"\U0001FAE8"}));
  EXPECT_EQ(matches(R"(\p{L}+)", "\U00031350\U00031351"),
            (std::vector<std::string>{"\U00031350\U00031351"}));
  EXPECT_EQ(matches(R"([^\p{L}]+)", "a\U00031350b!"), (std::vector<std::string>{"!"}));
  EXPECT_EQ(matches(R"(\P{L}+)", "a\U00031350b!"), (std::vector<std::string>{"!"}));
  EXPECT_EQ(matches(R"(\d)", "\U00011F50"), (std::vector<std::string>{"\U00011F50"}));
}

TEST(UnicodeRegex, CatchupTableMatchesTheLinkedPcre2) {
  // The table lists what the linked PCRE2 lacks; another PCRE2 needs it regenerated
  // (tools/gen_unicode_catchup.py).
  EXPECT_EQ(pcre2_unicode_version(), unicode_catchup_base_version());
}

TEST(UnicodeRegex, EmptyMatchesFollowOnigurumasIteration) {
  EXPECT_EQ(matches("a*", "baa"), (std::vector<std::string>{"", "aa"}));
  EXPECT_EQ(matches("x*", "é"), (std::vector<std::string>{"", ""}));
}

TEST(UnicodeRegex, LookaheadSeesOnlyTheSubject) {
  EXPECT_EQ(matches(R"(\s+(?!\S)|\s+)", "a   b  "), (std::vector<std::string>{"  ", " ", "  "}));
}

TEST(UnicodeRegex, RubyEscapesAndOptions) {
  EXPECT_EQ(matches(R"(\u00e9)", "café"), (std::vector<std::string>{"é"}));
  EXPECT_EQ(matches("(?m:a.b)", "a\nb"), (std::vector<std::string>{"a\nb"}));
  EXPECT_EQ(matches("^x", "x\nx"), (std::vector<std::string>{"x", "x"}));
  EXPECT_EQ(oniguruma_to_pcre2(R"(\p{Han}[\]\s])"),
            R"(\p{Han}[\]\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028})"
            R"(\x{2029}\x{202F}\x{205F}\x{3000}])");
}

TEST(UnicodeRegex, PosixClassesStayInsideTheirBracket) {
  EXPECT_EQ(matches(R"([[:digit:]\s]+)", "a1 2b"), (std::vector<std::string>{"1 2"}));
}

TEST(UnicodeRegex, LiteralPatterns) {
  EXPECT_EQ(matches("", "").size(), 1u);
  const UnicodeRegex literal = UnicodeRegex::literal("a.b*(c)");
  RegexScratch scratch;
  std::vector<TextSpan> spans;
  literal.find_all("xa.b*(c)axb", scratch, spans);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].begin, 1u);
}

TEST(UnicodeRegex, UnsupportedOrBrokenPatternsAreNamed) {
  EXPECT_THROW(UnicodeRegex("[a-z&&[^aeiou]]"), Error);
  EXPECT_THROW(UnicodeRegex(R"([\S])"), Error);
  try {
    UnicodeRegex("(unclosed");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("(unclosed"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsv4
