// UTF-8 scanning shared by the encoder (input validation) and the decoders (lossy output that
// replaces invalid bytes exactly as Rust's String::from_utf8_lossy does in HF tokenizers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4 {

enum class Utf8Status { complete, invalid, truncated };

struct Utf8Char {
  Utf8Status status;
  // complete: the character's byte length; invalid: the length of the maximal ill-formed
  // subpart (replaced by one U+FFFD); truncated: the bytes present, a valid but unfinished prefix.
  size_t length;
};

// Classifies the bytes at the start of `bytes` (which must not be empty).
Utf8Char scan_utf8_char(std::string_view bytes);

// Byte offset of the first ill-formed or truncated sequence, or std::string_view::npos.
size_t find_invalid_utf8(std::string_view bytes);

// Appends `bytes` to `out`, each maximal ill-formed subpart (and a truncated tail) replaced by
// U+FFFD.
void append_utf8_lossy(std::string_view bytes, std::string& out);

void append_utf8(char32_t code_point, std::string& out);

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace dsv4
