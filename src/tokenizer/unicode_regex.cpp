#include "tokenizer/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <utility>

#include "core/error.h"
#include "tokenizer/unicode_catchup.h"
#include "tokenizer/utf8.h"

namespace dsv4 {

namespace {

// Oniguruma's \s is Unicode White_Space; PCRE2's \s with UCP also takes U+180E (a format
// character since Unicode 6.3), so the class is spelled out.
constexpr std::string_view kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's \h is a hexadecimal digit, not PCRE2's horizontal space.
constexpr std::string_view kHexDigits = "0-9A-Fa-f";

constexpr size_t kLargestJitStack = size_t{64} << 20;

pcre2_code* as_code(void* code) {
  return static_cast<pcre2_code*>(code);
}

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A general category name that PCRE2 and Oniguruma both know: "L", "Lu", "L&", ...
bool is_general_category(std::string_view name) {
  constexpr std::string_view kMajor = "LMNPSZC";
  if (name.empty() || kMajor.find(name[0]) == std::string_view::npos) return false;
  return name.size() == 1 ||
         (name.size() == 2 &&
          (std::islower(static_cast<unsigned char>(name[1])) != 0 || name == "L&"));
}

// Members of a bracket class standing for general category `name`: PCRE2's property plus the
// code points assigned to it since PCRE2's Unicode version (unicode_catchup.h). The other
// category (C) only lost code points since, which a bracket class cannot subtract; patterns
// of tokenizers do not use it.
std::string category_members(std::string_view name) {
  std::string members = fmt::format("\\p{{{}}}", name);
  for (const CategoryRange& range : unicode_catchup_ranges()) {
    const std::string_view category = range.category;
    const bool in_category = name == "L&"
                                 ? (category == "Lu" || category == "Ll" || category == "Lt")
                                 : category.starts_with(name);
    if (!in_category) continue;
    members += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(range.first));
    if (range.last != range.first) {
      members += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(range.last));
    }
  }
  return members;
}

// Rewrites one Oniguruma pattern for PCRE2, escape by escape (see oniguruma_to_pcre2).
class PatternTranslator {
 public:
  explicit PatternTranslator(std::string_view pattern) : pattern_(pattern) {}

  std::string translate() {
    out_.reserve(pattern_.size() + 64);
    for (i_ = 0; i_ < pattern_.size(); ++i_) {
      const char c = pattern_[i_];
      if (c == '\\' && i_ + 1 < pattern_.size()) {
        translate_escape();
      } else if (in_class_) {
        copy_class_member(c);
      } else if (c == '[') {
        in_class_ = true;
        class_start_ = i_ + 1;
        if (class_start_ < pattern_.size() && pattern_[class_start_] == '^') ++class_start_;
        out_ += c;
      } else if (c == '(' && pattern_.substr(i_, 2) == "(?") {
        translate_group_options();
      } else {
        out_ += c;
      }
    }
    return std::move(out_);
  }

 private:
  // A set of characters given by its bracket-class members; `negated` for \S, \W, \P{..} ...
  void emit_class(const std::string& members, bool negated, std::string_view escape) {
    if (!in_class_) {
      out_ += negated ? "[^" : "[";
      out_ += members;
      out_ += ']';
    } else if (!negated) {
      out_ += members;
    } else {
      fail("regex {:?}: {} inside a character class is not supported", pattern_, escape);
    }
  }

  void translate_escape() {
    const size_t start = i_;
    const char escape = pattern_[++i_];
    const bool upper = std::isupper(static_cast<unsigned char>(escape)) != 0;
    switch (escape) {
      case 's':
      case 'S':
        return emit_class(std::string(kWhiteSpace), upper, pattern_.substr(start, 2));
      case 'h':
      case 'H':
        return emit_class(std::string(kHexDigits), upper, pattern_.substr(start, 2));
      case 'w':
      case 'W':
        // Oniguruma's word characters: Letter | Mark | Number | Connector_Punctuation.
        return emit_class(category_members("L") + category_members("M") + category_members("N") +
                              category_members("Pc"),
                          upper, pattern_.substr(start, 2));
      case 'd':
      case 'D':
        return emit_class(category_members("Nd"), upper, pattern_.substr(start, 2));
      case 'p':
      case 'P':
        return translate_property(start, escape == 'P');
      case 'u':
        if (i_ + 4 < pattern_.size() && is_hex_digit(pattern_[i_ + 1]) &&
            is_hex_digit(pattern_[i_ + 2]) && is_hex_digit(pattern_[i_ + 3]) &&
            is_hex_digit(pattern_[i_ + 4])) {
          // Ruby's \uHHHH; PCRE2 spells it \x{HHHH}.
          out_ += fmt::format("\\x{{{}}}", pattern_.substr(i_ + 1, 4));
          i_ += 4;
          return;
        }
        break;
      default:
        break;
    }
    out_ += pattern_.substr(start, 2);
  }

  // \p{Name}, \p{^Name}, \P{Name}, \pL: general categories get the catch-up code points;
  // scripts and other properties pass through unchanged.
  void translate_property(size_t start, bool negated) {
    std::string_view name;
    if (i_ + 1 < pattern_.size() && pattern_[i_ + 1] == '{') {
      const size_t close = pattern_.find('}', i_ + 2);
      if (close == std::string_view::npos) {
        fail("regex {:?}: unterminated \\{}{{", pattern_, pattern_[i_]);
      }
      name = pattern_.substr(i_ + 2, close - i_ - 2);
      i_ = close;
    } else if (i_ + 1 < pattern_.size()) {
      name = pattern_.substr(++i_, 1);
    }
    if (name.starts_with('^')) {
      negated = !negated;
      name.remove_prefix(1);
    }
    if (!is_general_category(name) || name[0] == 'C') {
      out_ += pattern_.substr(start, i_ + 1 - start);
      return;
    }
    emit_class(category_members(name), negated, pattern_.substr(start, i_ + 1 - start));
  }

  void copy_class_member(char c) {
    if (c == '[' && pattern_.substr(i_, 2) == "[:") {
      // A POSIX class such as [:alpha:], whose closing bracket does not end the class.
      const size_t close = pattern_.find(":]", i_ + 2);
      if (close == std::string_view::npos) fail("regex {:?}: unterminated [:", pattern_);
      out_ += pattern_.substr(i_, close + 2 - i_);
      i_ = close + 1;
      return;
    }
    if (c == ']' && i_ > class_start_) {
      in_class_ = false;
    } else if (c == '[') {
      fail("regex {:?}: nested character classes are not supported", pattern_);
    } else if (c == '&' && pattern_.substr(i_, 2) == "&&") {
      fail("regex {:?}: character class intersection (&&) is not supported", pattern_);
    }
    out_ += c;
  }

  // Inline options: Ruby's (?m) is PCRE2's (?s) (dot matches newline); Ruby has no option for
  // line anchors since ^ and $ always match at line breaks.
  void translate_group_options() {
    size_t end = i_ + 2;
    while (end < pattern_.size() && (pattern_[end] == 'i' || pattern_[end] == 'm' ||
                                     pattern_[end] == 'x' || pattern_[end] == '-')) {
      ++end;
    }
    if (end == i_ + 2 || end == pattern_.size() || (pattern_[end] != ':' && pattern_[end] != ')')) {
      out_ += '(';
      return;
    }
    out_ += "(?";
    for (size_t j = i_ + 2; j < end; ++j) out_ += pattern_[j] == 'm' ? 's' : pattern_[j];
    i_ = end - 1;
  }

  std::string_view pattern_;
  std::string out_;
  size_t i_ = 0;
  bool in_class_ = false;
  size_t class_start_ = 0;  // index of the current class's first member
};

}  // namespace

std::string oniguruma_to_pcre2(std::string_view pattern) {
  return PatternTranslator(pattern).translate();
}

std::string pcre2_unicode_version() {
  char buffer[32] = {};
  pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, buffer);
  return buffer;
}

struct RegexScratch::State {
  pcre2_match_data* match_data = nullptr;
  pcre2_match_context* match_context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  size_t jit_stack_size = 0;

  ~State() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(match_context);
    pcre2_match_data_free(match_data);
  }

  // PCRE2 matches on a 32 KiB machine stack until told otherwise; patterns that backtrack
  // over long pieces need more.
  bool grow_jit_stack() {
    const size_t size = jit_stack_size == 0 ? size_t{1} << 20 : jit_stack_size * 4;
    if (size > kLargestJitStack) return false;
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 << 10, size, nullptr);
    if (stack == nullptr) return false;
    if (match_context == nullptr) match_context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(match_context, nullptr, stack);
    pcre2_jit_stack_free(jit_stack);
    jit_stack = stack;
    jit_stack_size = size;
    return true;
  }
};

RegexScratch::RegexScratch() : state_(std::make_unique<State>()) {
  // Only the whole match is read; captures that do not fit are simply not recorded.
  state_->match_data = pcre2_match_data_create(1, nullptr);
  if (state_->match_data == nullptr) fail("out of memory creating PCRE2 match data");
}

RegexScratch::~RegexScratch() = default;

UnicodeRegex::UnicodeRegex(std::string_view pattern) : pattern_(pattern) {
  const std::string translated = oniguruma_to_pcre2(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // Ruby syntax anchors ^ and $ at every line break, hence MULTILINE.
  code_ =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code, &error_offset, nullptr);
  if (code_ == nullptr) {
    fail("regex {:?} does not compile: {} (at offset {} of {:?})", pattern,
         pcre2_message(error_code), error_offset, translated);
  }
  // Without JIT support PCRE2 interprets the pattern: slower, same matches.
  pcre2_jit_compile(as_code(code_), PCRE2_JIT_COMPLETE);
}

UnicodeRegex UnicodeRegex::literal(std::string_view literal) {
  std::string escaped;
  for (const char c : literal) {
    const auto byte = static_cast<unsigned char>(c);
    // A backslash before any ASCII non-alphanumeric makes it literal in PCRE2.
    const bool alphanumeric =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (byte < 0x80 && !alphanumeric) escaped += '\\';
    escaped += c;
  }
  return UnicodeRegex(escaped);
}

UnicodeRegex::~UnicodeRegex() {
  pcre2_code_free(as_code(code_));
}

UnicodeRegex::UnicodeRegex(UnicodeRegex&& other) noexcept
    : pattern_(std::move(other.pattern_)), code_(std::exchange(other.code_, nullptr)) {}

UnicodeRegex& UnicodeRegex::operator=(UnicodeRegex&& other) noexcept {
  if (this != &other) {
    pcre2_code_free(as_code(code_));
    pattern_ = std::move(other.pattern_);
    code_ = std::exchange(other.code_, nullptr);
  }
  return *this;
}

void UnicodeRegex::find_all(std::string_view text, RegexScratch& scratch,
                            std::vector<TextSpan>& out) const {
  RegexScratch::State& state = *scratch.state_;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t position = 0;
  bool have_previous = false;
  size_t previous_end = 0;
  while (position <= text.size()) {
    const int rc = pcre2_match(as_code(code_), subject, text.size(), position, PCRE2_NO_UTF_CHECK,
                               state.match_data, state.match_context);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && state.grow_jit_stack()) continue;
    if (rc < 0) {
      fail("regex {:?} failed on a text of {} bytes: {}", pattern_, text.size(), pcre2_message(rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.match_data);
    const size_t begin = ovector[0], end = ovector[1];
    if (begin == end && have_previous && previous_end == end) {
      position = end < text.size() ? end + scan_utf8_char(text.substr(end)).length : end + 1;
      continue;
    }
    out.push_back({begin, end});
    position = end;
    previous_end = end;
    have_previous = true;
  }
}

}  // namespace dsv4
