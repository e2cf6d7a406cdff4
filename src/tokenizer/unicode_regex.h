// Unicode regular expressions for the pre-tokenizer. HF tokenizers compiles tokenizer.json's
// patterns with Oniguruma; here PCRE2 (UTF + UCP, JIT-compiled) runs them after the few
// escapes whose meaning differs between the two engines are spelled out (see .cpp).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4 {

struct TextSpan {
  size_t begin, end;
};

// Per-thread matching state (PCRE2 match data and, when a pattern needs more, a JIT stack).
// One scratch serves every UnicodeRegex; it must not be shared by concurrent calls.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class UnicodeRegex;
  struct State;
  std::unique_ptr<State> state_;
};

class UnicodeRegex {
 public:
  // `pattern` in Oniguruma (Ruby) syntax, as tokenizer.json stores it; fails naming it when
  // it does not compile.
  explicit UnicodeRegex(std::string_view pattern);
  ~UnicodeRegex();
  UnicodeRegex(UnicodeRegex&&) noexcept;
  UnicodeRegex& operator=(UnicodeRegex&&) noexcept;

  // A regex that matches `literal` verbatim (tokenizer.json's {"String": ...} patterns).
  static UnicodeRegex literal(std::string_view literal);

  // Appends the matches in `text` (valid UTF-8), left to right and non-overlapping, exactly as
  // Oniguruma's find_iter reports them (an empty match right after a match is skipped).
  void find_all(std::string_view text, RegexScratch& scratch, std::vector<TextSpan>& out) const;

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8, kept opaque so that users need no PCRE2 headers
};

// Rewrites the escapes whose meaning differs between Oniguruma and PCRE2, and gives general
// categories the code points PCRE2's Unicode tables lack (exposed for tests).
std::string oniguruma_to_pcre2(std::string_view pattern);

// The Unicode version of the linked PCRE2's tables, e.g. "14.0.0".
std::string pcre2_unicode_version();

}  // namespace dsv4
