// GPT-2's byte-level alphabet: each of the 256 byte values stands for one printable Unicode
// character, so that a BPE vocabulary over raw bytes can be stored as text in tokenizer.json.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4 {

class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& instance();

  // The UTF-8 encoding of the character that stands for `byte`.
  std::string_view char_for(uint8_t byte) const { return chars_[byte]; }

  // Appends the bytes a vocabulary token stands for. Returns false, appending nothing, when
  // some character of the token is outside the alphabet (an added token such as
  // "<｜User｜>"), which the byte-level decoder then emits as its own UTF-8 text.
  bool append_bytes(std::string_view token, std::string& out) const;

 private:
  ByteLevelAlphabet();

  // Printable Latin-1 bytes stand for themselves; the rest map to U+0100 onwards.
  static constexpr char32_t kHighestChar = 0x143;

  std::array<std::string, 256> chars_;
  std::array<int16_t, kHighestChar + 1> byte_of_char_;  // -1: not in the alphabet
};

}  // namespace dsv4
