// Streaming decode: fed one id at a time, it only ever emits complete UTF-8, and all it emits
// adds up to the one-shot decode.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"

#include "test_support.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv4 {
namespace {

// Feeds `ids` one by one; checks each piece is whole UTF-8 and returns them all joined.
std::string stream(const std::vector<TokenId>& ids, bool skip_special = false) {
  StreamingDetokenizer detokenizer(testing::deepseek_tokenizer(), skip_special);
  std::string text;
  for (const TokenId id : ids) {
    const std::string piece = detokenizer.push(id);
    EXPECT_EQ(find_invalid_utf8(piece), std::string::npos) << "after id " << id;
    text += piece;
  }
  return text + detokenizer.finish();
}

TEST(StreamingDetokenizer, HoldsBackCharactersSplitAcrossTokens) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  // Emoji and rare CJK characters are split into byte-level tokens.
  const std::vector<TokenId> ids = tokenizer.encode("🙂𠀀");
  ASSERT_GT(ids.size(), 2u);
  StreamingDetokenizer detokenizer(tokenizer);
  std::vector<std::string> pieces;
  for (const TokenId id : ids) pieces.push_back(detokenizer.push(id));
  EXPECT_EQ(pieces.front(), "");  // the first token holds only part of 🙂
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  EXPECT_EQ(joined, "🙂𠀀");
  EXPECT_EQ(detokenizer.finish(), "");
}

TEST(StreamingDetokenizer, MatchesOneShotDecode) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  for (const std::string text :
       {"Hello, world!", "你好，世界 🇯🇵 👨‍👩‍👧",
        "<｜User｜>héllo<｜Assistant｜>ok<｜end▁of▁sentence｜>", "ঝ ᄀ ⅷ 𝐀 ﬁ\t\r\n"}) {
    const std::vector<TokenId> ids = tokenizer.encode(text);
    EXPECT_EQ(stream(ids), text);
    EXPECT_EQ(stream(ids, /*skip_special=*/true), tokenizer.decode(ids, /*skip_special=*/true));
  }
}

TEST(StreamingDetokenizer, InvalidBytesBecomeReplacementCharactersAsInDecode) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  std::mt19937 random(7);
  std::uniform_int_distribution<TokenId> any_id(0,
                                                static_cast<TokenId>(tokenizer.vocab_size()) - 1);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<TokenId> ids(1 + trial % 30);
    for (TokenId& id : ids) id = any_id(random);
    EXPECT_EQ(stream(ids), tokenizer.decode(ids));
    EXPECT_EQ(stream(ids, true), tokenizer.decode(ids, true));
  }
}

TEST(StreamingDetokenizer, UnfinishedCharacterAtTheEnd) {
  const Tokenizer& tokenizer = testing::deepseek_tokenizer();
  const std::vector<TokenId> ids = tokenizer.encode("🙂");
  StreamingDetokenizer detokenizer(tokenizer);
  EXPECT_EQ(detokenizer.push(ids.front()), "");
  EXPECT_EQ(detokenizer.finish(), kReplacementCharacter);
}

TEST(StreamingDetokenizer, UnknownIdFails) {
  StreamingDetokenizer detokenizer(testing::deepseek_tokenizer());
  EXPECT_THROW(detokenizer.push(999999), Error);
}

}  // namespace
}  // namespace dsv4
