#include "tokenizer/utf8.h"

namespace dsv4 {

namespace {

bool in_range(unsigned char byte, unsigned char low, unsigned char high) {
  return byte >= low && byte <= high;
}

}  // namespace

Utf8Char scan_utf8_char(std::string_view bytes) {
  const auto lead = static_cast<unsigned char>(bytes[0]);
  if (lead < 0x80) return {Utf8Status::complete, 1};
  size_t length = 0;
  // The second byte's range is narrower than 80..BF for some leads: it excludes overlong
  // forms, surrogates and code points above U+10FFFF (Unicode Table 3-7).
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (in_range(lead, 0xC2, 0xDF)) {
    length = 2;
  } else if (in_range(lead, 0xE0, 0xEF)) {
    length = 3;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;
  } else if (in_range(lead, 0xF0, 0xF4)) {
    length = 4;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;
  } else {
    return {Utf8Status::invalid, 1};
  }
  for (size_t i = 1; i < length; ++i) {
    if (i == bytes.size()) return {Utf8Status::truncated, i};
    const auto byte = static_cast<unsigned char>(bytes[i]);
    const bool ok = i == 1 ? in_range(byte, second_low, second_high) : in_range(byte, 0x80, 0xBF);
    if (!ok) return {Utf8Status::invalid, i};
  }
  return {Utf8Status::complete, length};
}

size_t find_invalid_utf8(std::string_view bytes) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    // ASCII dominates most text: skip it without the general decoder.
    if (static_cast<unsigned char>(bytes[offset]) < 0x80) {
      ++offset;
      continue;
    }
    const Utf8Char c = scan_utf8_char(bytes.substr(offset));
    if (c.status != Utf8Status::complete) return offset;
    offset += c.length;
  }
  return std::string_view::npos;
}

void append_utf8_lossy(std::string_view bytes, std::string& out) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    const Utf8Char c = scan_utf8_char(bytes.substr(offset));
    if (c.status == Utf8Status::complete) {
      out.append(bytes.substr(offset, c.length));
    } else {
      out.append(kReplacementCharacter);
    }
    offset += c.length;
  }
}

void append_utf8(char32_t code_point, std::string& out) {
  const auto cp = static_cast<uint32_t>(code_point);
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace dsv4
