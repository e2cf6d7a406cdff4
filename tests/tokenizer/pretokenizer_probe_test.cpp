// Every code point of planes 0-3 and 14, in a few probe strings, splits into the same number
// of pieces as in HF tokenizers (tests/data/tokenizer/pretokenizer_classes.json, made by
// tools/gen_tokenizer_corpus.py): the regex engine's Unicode classes agree with Oniguruma's.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_support.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv4 {
namespace {

std::string with_code_point(const std::string& probe, char32_t code_point) {
  std::string character, text;
  append_utf8(code_point, character);
  for (size_t i = 0; i < probe.size(); ++i) {
    if (probe.compare(i, 3, "{c}") == 0) {
      text += character;
      i += 2;
    } else {
      text += probe[i];
    }
  }
  return text;
}

TEST(PreTokenizerProbe, SplitsEveryCodePointLikeHf) {
  const nlohmann::json classes =
      testing::read_json(testing::test_data_dir() / "pretokenizer_classes.json");
  const PreTokenizer pre_tokenizer(classes.at("pre_tokenizer"), "pretokenizer_classes.json");
  const auto probes = classes.at("probes").get<std::vector<std::string>>();
  const auto& ranges = classes.at("ranges");
  PreTokenizerScratch scratch;
  std::vector<std::string_view> pieces;
  size_t mismatches = 0, checked = 0;
  for (size_t r = 0; r + 1 < ranges.size(); ++r) {
    const auto code = ranges[r].at(1).get<std::string>();
    if (code == "end" || code == "surrogate") continue;
    const auto begin = ranges[r].at(0).get<char32_t>();
    const auto end = ranges[r + 1].at(0).get<char32_t>();
    for (char32_t cp = begin; cp < end; ++cp) {
      std::string ours;
      for (const std::string& probe : probes) {
        pre_tokenizer.split(with_code_point(probe, cp), scratch, pieces);
        ours += std::to_string(pieces.size());
      }
      ++checked;
      if (ours != code && ++mismatches <= 20) {
        ADD_FAILURE() << fmt::format("U+{:04X}: pieces per probe {} here, {} in HF",
                                     static_cast<uint32_t>(cp), ours, code);
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " code points";
  EXPECT_GT(checked, 250000u);
}

}  // namespace
}  // namespace dsv4
