#include "tokenizer/streaming_detokenizer.h"

#include "tokenizer/utf8.h"

namespace dsv4 {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamingDetokenizer::push(TokenId id) {
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_bytes(id);
  std::string text;
  size_t offset = 0;
  while (offset < pending_.size()) {
    const Utf8Char c = scan_utf8_char(std::string_view(pending_).substr(offset));
    if (c.status == Utf8Status::truncated) break;
    if (c.status == Utf8Status::complete) {
      text.append(pending_, offset, c.length);
    } else {
      text += kReplacementCharacter;
    }
    offset += c.length;
  }
  pending_.erase(0, offset);
  return text;
}

std::string StreamingDetokenizer::finish() {
  std::string text;
  append_utf8_lossy(pending_, text);
  pending_.clear();
  return text;
}

}  // namespace dsv4
