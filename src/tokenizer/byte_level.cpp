#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace dsv4 {

namespace {

bool stands_for_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

}  // namespace

const ByteLevelAlphabet& ByteLevelAlphabet::instance() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_char_.fill(-1);
  char32_t next_shifted = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t c = stands_for_itself(byte) ? static_cast<char32_t>(byte) : next_shifted++;
    append_utf8(c, chars_[byte]);
    byte_of_char_[c] = static_cast<int16_t>(byte);
  }
}

bool ByteLevelAlphabet::append_bytes(std::string_view token, std::string& out) const {
  const size_t original_size = out.size();
  size_t offset = 0;
  while (offset < token.size()) {
    const auto lead = static_cast<unsigned char>(token[offset]);
    // Every character of the alphabet is below U+0800: one or two bytes of UTF-8.
    char32_t c = 0;
    if (lead < 0x80) {
      c = lead;
      offset += 1;
    } else if ((lead & 0xE0) == 0xC0 && offset + 1 < token.size()) {
      c = static_cast<char32_t>(((lead & 0x1F) << 6) |
                                (static_cast<unsigned char>(token[offset + 1]) & 0x3F));
      offset += 2;
    } else {
      c = kHighestChar + 1;
    }
    if (c > kHighestChar || byte_of_char_[c] < 0) {
      out.resize(original_size);
      return false;
    }
    out.push_back(static_cast<char>(byte_of_char_[c]));
  }
  return true;
}

}  // namespace dsv4
