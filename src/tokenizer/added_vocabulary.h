// Added tokens (tokenizer.json's "added_tokens"): matched in the text before pre-tokenization,
// leftmost-longest, with HF tokenizers' options (special, normalized, lstrip, rstrip,
// single_word). With the identity normalizer, HF's two passes (tokens matched on the raw text,
// then "normalized" ones on what is left) match the same strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_model.h"
#include "tokenizer/token_id.h"
#include "tokenizer/unicode_regex.h"

namespace dsv4 {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// A run of text to pre-tokenize (token < 0) or an added token.
struct TextSegment {
  std::string_view text;
  TokenId token;
};

class AddedVocabulary {
 public:
  // Ids are assigned as HF tokenizers assigns them, not read from the file: a token already in
  // `model`'s vocabulary keeps that id, any other takes the next id after the vocabulary and
  // the tokens added before it (the same as the file's ids when those leave no gaps).
  AddedVocabulary(const nlohmann::json& added_tokens, const BpeModel& model,
                  const std::string& source);

  // Replaces `out` with the segments of `text`. Special tokens are only matched when
  // `match_special` (HF's encode_special_tokens = false).
  void split(std::string_view text, bool match_special, std::vector<TextSegment>& out) const;

  const AddedToken* find(TokenId id) const;
  std::optional<TokenId> token_to_id(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Multi-pattern literal matching with aho-corasick's LeftmostLongest semantics: the match
  // starting first wins, and among those the longest.
  class Trie {
   public:
    Trie();
    void add(std::string_view key, size_t token_index);
    struct Match {
      size_t begin, end, token_index;
    };
    std::optional<Match> find(std::string_view text, size_t from) const;

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
      int64_t token_index = -1;
    };
    int32_t child(int32_t node, unsigned char byte) const;
    std::vector<Node> nodes_;
    std::array<bool, 256> is_first_byte_{};
  };

  void split_pass(const Trie& trie, std::string_view text, bool match_special,
                  std::vector<TextSegment>& out) const;
  bool is_single_word(std::string_view text, size_t begin, size_t end) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<TokenId, size_t> index_by_id_;
  std::unordered_map<std::string, size_t> index_by_content_;
  Trie raw_trie_, normalized_trie_;
  UnicodeRegex word_char_;  // Rust regex's \w, which single_word consults
};

}  // namespace dsv4
