#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace dsv4 {

namespace {

// The split that HF's ByteLevel pre-tokenizer applies when "use_regex" is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const std::string& name, const std::string& source) {
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  fail("{}: unknown Split behavior {:?}", source, name);
}

UnicodeRegex parse_pattern(const nlohmann::json& pattern, const std::string& source) {
  if (pattern.contains("Regex")) return UnicodeRegex(pattern.at("Regex").get<std::string>());
  if (pattern.contains("String")) {
    return UnicodeRegex::literal(pattern.at("String").get<std::string>());
  }
  fail("{}: Split pattern {} is neither {{\"Regex\": ...}} nor {{\"String\": ...}}", source,
       pattern.dump());
}

// HF's NormalizedString::split: the pieces kept from the alternating gap/match segments.
void fold_segments(SplitBehavior behavior, const std::vector<PreTokenizerScratch::Segment>& in,
                   std::vector<PreTokenizerScratch::Segment>& out) {
  out.clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::isolated:
      for (const auto& segment : in) out.push_back({segment.begin, segment.end, false});
      return;
    case SplitBehavior::removed:
      for (const auto& segment : in) {
        if (!segment.is_match) out.push_back(segment);
      }
      return;
    case SplitBehavior::contiguous:
      for (const auto& segment : in) {
        if (segment.is_match == previous_match && !out.empty()) {
          out.back().end = segment.end;
        } else {
          out.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      return;
    case SplitBehavior::merged_with_previous:
      for (const auto& segment : in) {
        if (segment.is_match && !previous_match && !out.empty()) {
          out.back().end = segment.end;
        } else {
          out.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      return;
    case SplitBehavior::merged_with_next:
      for (auto it = in.rbegin(); it != in.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      return;
  }
}

}  // namespace

PreTokenizer::PreTokenizer(const nlohmann::json& config, const std::string& source) {
  if (!config.is_null()) add_step(config, source);
  // The BPE model's alphabet is the byte-level one (see bpe_model.h).
  if (!byte_level_seen_) fail("{}: the pre-tokenizer has no ByteLevel step", source);
}

void PreTokenizer::add_step(const nlohmann::json& config, const std::string& source) {
  const std::string type = config.value("type", "");
  if (byte_level_seen_) {
    fail("{}: pre-tokenizer {:?} after ByteLevel is not supported (ByteLevel must be last)", source,
         type);
  }
  if (type == "Sequence") {
    for (const auto& step : config.at("pretokenizers")) add_step(step, source);
  } else if (type == "Split") {
    steps_.push_back({parse_pattern(config.at("pattern"), source),
                      parse_behavior(config.at("behavior").get<std::string>(), source),
                      config.value("invert", false)});
  } else if (type == "ByteLevel") {
    byte_level_seen_ = true;
    add_prefix_space_ = config.value("add_prefix_space", true);
    if (config.value("use_regex", true)) {
      byte_level_steps_.push_back({UnicodeRegex(kGpt2Pattern), SplitBehavior::isolated, false});
    }
  } else {
    fail("{}: pre-tokenizer type {:?} is not supported (Sequence, Split and ByteLevel are)", source,
         type);
  }
}

void PreTokenizer::apply_split(const SplitStep& step, std::string_view piece,
                               PreTokenizerScratch& scratch,
                               std::vector<std::string_view>& out) const {
  auto& matches = scratch.matches;
  matches.clear();
  step.pattern.find_all(piece, scratch.regex, matches);
  if (step.behavior == SplitBehavior::isolated) {
    // The common case needs no segment bookkeeping: gaps and matches become pieces.
    size_t previous = 0;
    for (const TextSpan& match : matches) {
      if (match.begin > previous) out.push_back(piece.substr(previous, match.begin - previous));
      if (match.end > match.begin)
        out.push_back(piece.substr(match.begin, match.end - match.begin));
      previous = match.end;
    }
    if (previous < piece.size()) out.push_back(piece.substr(previous));
    return;
  }
  auto& segments = scratch.segments;
  segments.clear();
  size_t previous = 0;
  for (const TextSpan& match : matches) {
    if (match.begin != previous) segments.push_back({previous, match.begin, step.invert});
    segments.push_back({match.begin, match.end, !step.invert});
    previous = match.end;
  }
  if (previous != piece.size()) segments.push_back({previous, piece.size(), step.invert});
  fold_segments(step.behavior, segments, scratch.kept);
  for (const auto& segment : scratch.kept) {
    if (segment.end > segment.begin) {
      out.push_back(piece.substr(segment.begin, segment.end - segment.begin));
    }
  }
}

void PreTokenizer::split(std::string_view text, PreTokenizerScratch& scratch,
                         std::vector<std::string_view>& pieces) const {
  pieces.clear();
  scratch.prefixed.clear();
  if (text.empty()) return;
  pieces.push_back(text);
  auto& next = scratch.pieces;
  const auto run_steps = [&](const std::vector<SplitStep>& steps) {
    for (const SplitStep& step : steps) {
      next.clear();
      for (const std::string_view piece : pieces) apply_split(step, piece, scratch, next);
      std::swap(pieces, next);
    }
  };
  run_steps(steps_);
  if (add_prefix_space_) {
    for (std::string_view& piece : pieces) {
      if (piece.front() == ' ') continue;
      std::string& prefixed = scratch.prefixed.emplace_back(1, ' ');
      prefixed += piece;
      piece = prefixed;
    }
  }
  run_steps(byte_level_steps_);
}

}  // namespace dsv4
