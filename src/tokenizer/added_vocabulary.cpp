#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace dsv4 {

namespace {

// Rust regex's \w (Unicode), which HF's single_word check uses.
constexpr std::string_view kRustWordChar = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";

// Unicode White_Space, Rust regex's \s, which lstrip and rstrip strip.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

char32_t decode_code_point(std::string_view character) {
  const auto lead = static_cast<unsigned char>(character[0]);
  if (character.size() == 1) return lead;
  char32_t value = lead & (0x7F >> character.size());
  for (size_t i = 1; i < character.size(); ++i) {
    value = (value << 6) | (static_cast<unsigned char>(character[i]) & 0x3F);
  }
  return value;
}

// The character of valid UTF-8 `text` that ends at `end` (> 0).
std::string_view character_before(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  return text.substr(begin, end - begin);
}

std::string_view character_at(std::string_view text, size_t begin) {
  return text.substr(begin, scan_utf8_char(text.substr(begin)).length);
}

// Where the run of white space that ends `text` at `end` begins.
size_t white_space_start(std::string_view text, size_t end) {
  while (end > 0) {
    const std::string_view c = character_before(text, end);
    if (!is_white_space(decode_code_point(c))) break;
    end -= c.size();
  }
  return end;
}

size_t white_space_end(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    const std::string_view c = character_at(text, begin);
    if (!is_white_space(decode_code_point(c))) break;
    begin += c.size();
  }
  return begin;
}

}  // namespace

AddedVocabulary::Trie::Trie() : nodes_(1) {}

int32_t AddedVocabulary::Trie::child(int32_t node, unsigned char byte) const {
  const auto& children = nodes_[static_cast<size_t>(node)].children;
  const auto it =
      std::lower_bound(children.begin(), children.end(), byte,
                       [](const auto& entry, unsigned char b) { return entry.first < b; });
  return it != children.end() && it->first == byte ? it->second : -1;
}

void AddedVocabulary::Trie::add(std::string_view key, size_t token_index) {
  is_first_byte_[static_cast<unsigned char>(key[0])] = true;
  int32_t node = 0;
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      auto& children = nodes_[static_cast<size_t>(node)].children;
      children.insert(
          std::lower_bound(children.begin(), children.end(), std::pair{byte, 0},
                           [](const auto& a, const auto& b) { return a.first < b.first; }),
          {byte, next});
      nodes_.emplace_back();
    }
    node = next;
  }
  nodes_[static_cast<size_t>(node)].token_index = static_cast<int64_t>(token_index);
}

std::optional<AddedVocabulary::Trie::Match> AddedVocabulary::Trie::find(std::string_view text,
                                                                        size_t from) const {
  for (size_t begin = from; begin < text.size(); ++begin) {
    if (!is_first_byte_[static_cast<unsigned char>(text[begin])]) continue;
    int32_t node = 0;
    std::optional<Match> longest;
    for (size_t end = begin; end < text.size(); ++end) {
      node = child(node, static_cast<unsigned char>(text[end]));
      if (node < 0) break;
      const int64_t index = nodes_[static_cast<size_t>(node)].token_index;
      if (index >= 0) longest = Match{begin, end + 1, static_cast<size_t>(index)};
    }
    if (longest) return longest;
  }
  return std::nullopt;
}

AddedVocabulary::AddedVocabulary(const nlohmann::json& added_tokens, const BpeModel& model,
                                 const std::string& source)
    : word_char_(kRustWordChar) {
  if (!added_tokens.is_null() && !added_tokens.is_array()) {
    fail("{}: \"added_tokens\" is not an array", source);
  }
  const auto vocab_entries = static_cast<TokenId>(model.vocab_entries());
  std::optional<TokenId> largest_added;
  for (const auto& entry : added_tokens) {
    AddedToken token;
    token.content = entry.at("content").get<std::string>();
    token.special = entry.value("special", false);
    token.normalized = entry.value("normalized", !token.special);
    token.lstrip = entry.value("lstrip", false);
    token.rstrip = entry.value("rstrip", false);
    token.single_word = entry.value("single_word", false);
    // HF ignores empty tokens and keeps the first of repeated ones.
    if (token.content.empty() || index_by_content_.contains(token.content)) continue;
    if (const auto id = model.token_to_id(token.content)) {
      token.id = *id;
    } else if (largest_added && *largest_added >= vocab_entries) {
      token.id = *largest_added + 1;
    } else {
      token.id = vocab_entries;
    }
    largest_added = std::max(largest_added.value_or(token.id), token.id);
    const size_t index = tokens_.size();
    index_by_id_.emplace(token.id, index);
    index_by_content_.emplace(token.content, index);
    (token.normalized ? normalized_trie_ : raw_trie_).add(token.content, index);
    tokens_.push_back(std::move(token));
  }
}

const AddedToken* AddedVocabulary::find(TokenId id) const {
  const auto it = index_by_id_.find(id);
  return it == index_by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<TokenId> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto it = index_by_content_.find(std::string(content));
  if (it == index_by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

bool AddedVocabulary::is_single_word(std::string_view text, size_t begin, size_t end) const {
  thread_local RegexScratch scratch;
  thread_local std::vector<TextSpan> matches;
  const auto is_word_char = [&](std::string_view c) {
    matches.clear();
    word_char_.find_all(c, scratch, matches);
    return !matches.empty();
  };
  const bool starts_clear = begin == 0 || !is_word_char(character_before(text, begin));
  const bool ends_clear = end == text.size() || !is_word_char(character_at(text, end));
  return starts_clear && ends_clear;
}

void AddedVocabulary::split_pass(const Trie& trie, std::string_view text, bool match_special,
                                 std::vector<TextSegment>& out) const {
  size_t covered = 0;  // end of the last emitted segment
  size_t search_from = 0;
  while (const auto match = trie.find(text, search_from)) {
    // The search resumes after the literal match even when the match is then discarded or
    // stretched by rstrip, as aho-corasick's iterator does in HF.
    search_from = match->end;
    const AddedToken& token = tokens_[match->token_index];
    if (token.special && !match_special) continue;
    if (token.single_word && !is_single_word(text, match->begin, match->end)) continue;
    size_t begin = match->begin, end = match->end;
    if (token.lstrip) begin = std::max(white_space_start(text, begin), covered);
    if (token.rstrip) end = white_space_end(text, end);
    if (covered < begin) out.push_back({text.substr(covered, begin - covered), -1});
    out.push_back({text.substr(begin, end - begin), token.id});
    covered = end;
  }
  if (covered < text.size()) out.push_back({text.substr(covered), -1});
}

void AddedVocabulary::split(std::string_view text, bool match_special,
                            std::vector<TextSegment>& out) const {
  out.clear();
  thread_local std::vector<TextSegment> first_pass;
  first_pass.clear();
  split_pass(raw_trie_, text, match_special, first_pass);
  for (const TextSegment& segment : first_pass) {
    if (segment.token >= 0) {
      out.push_back(segment);
    } else {
      split_pass(normalized_trie_, segment.text, match_special, out);
    }
  }
}

}  // namespace dsv4
