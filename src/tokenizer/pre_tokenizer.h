// The pre-tokenizer of tokenizer.json: a Sequence of Split steps (regex or literal pattern,
// HF's delimiter behaviours, optional inversion) ending in the ByteLevel step. It cuts text
// into the pieces that BPE encodes one at a time.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/unicode_regex.h"

namespace dsv4 {

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

// Buffers reused across calls by one thread.
struct PreTokenizerScratch {
  struct Segment {
    size_t begin, end;
    bool is_match;
  };
  RegexScratch regex;
  std::vector<TextSpan> matches;
  std::vector<Segment> segments, kept;
  std::vector<std::string_view> pieces;
  std::deque<std::string> prefixed;  // pieces that ByteLevel's add_prefix_space had to copy
};

class PreTokenizer {
 public:
  // `config` is tokenizer.json's "pre_tokenizer" (null: the text is one piece); `source` names
  // the file in errors.
  PreTokenizer(const nlohmann::json& config, const std::string& source);

  // Replaces `pieces` with the pieces of `text` (valid UTF-8), left to right; they view `text`
  // or `scratch.prefixed`. BPE receives them as raw bytes: the ByteLevel step's byte-to-
  // character mapping is the BPE model's alphabet (see bpe_model.h).
  void split(std::string_view text, PreTokenizerScratch& scratch,
             std::vector<std::string_view>& pieces) const;

 private:
  struct SplitStep {
    UnicodeRegex pattern;
    SplitBehavior behavior;
    bool invert;
  };

  void add_step(const nlohmann::json& config, const std::string& source);
  void apply_split(const SplitStep& step, std::string_view piece, PreTokenizerScratch& scratch,
                   std::vector<std::string_view>& out) const;

  std::vector<SplitStep> steps_;
  // The ByteLevel step, which must come last: an optional space before every piece, then
  // (use_regex) GPT-2's split.
  bool byte_level_seen_ = false;
  bool add_prefix_space_ = false;
  std::vector<SplitStep> byte_level_steps_;
};

}  // namespace dsv4
