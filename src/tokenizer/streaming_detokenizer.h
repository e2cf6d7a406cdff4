// Incremental decoding for streamed generation: ids go in one at a time and only complete
// UTF-8 characters come out, so a character split across byte-level tokens is held back until
// its last byte arrives. The concatenated output equals Tokenizer::decode of all the ids.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace dsv4 {

class StreamingDetokenizer {
 public:
  // `tokenizer` must outlive this. With `skip_special`, special tokens (BOS, EOS, ...) produce
  // no text.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special = false);

  // The text that `id` completes (often empty or one token's worth). Bytes that can no longer
  // form a character come out as U+FFFD. Fails on an unknown id.
  std::string push(TokenId id);

  // The end of the stream: an unfinished character left over becomes U+FFFD.
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;  // leading bytes of a character still waiting for the rest
};

}  // namespace dsv4
