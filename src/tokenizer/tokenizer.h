// A Hugging Face tokenizer.json (byte-level BPE, as DeepSeek ships) that encodes text to the
// same ids as HF tokenizers and decodes ids back to text.
//
//   const dsv4::Tokenizer tokenizer = dsv4::Tokenizer::load("model_dir");
//   std::vector<dsv4::TokenId> ids = tokenizer.encode("Hello<｜end▁of▁sentence｜>");
//   std::string text = tokenizer.decode(ids);
//
// All const methods are safe to call from several threads at once.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/token_id.h"

namespace dsv4 {

class Tokenizer {
 public:
  // `path` is a tokenizer.json or a directory holding one. tokenizer_config.json beside it,
  // when present, names the BOS and EOS tokens. Fails naming the file when it is missing,
  // malformed, or uses a feature this implementation does not have.
  static Tokenizer load(const std::filesystem::path& path);

  // The same from the files' contents; `config_json` may be empty. `source` names them in
  // errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json,
                             const std::string& source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // The ids of `text` (UTF-8; fails otherwise), without BOS. Added tokens written in the text
  // become their ids; with `parse_special` false, special ones are encoded as plain text.
  std::vector<TokenId> encode(std::string_view text, bool parse_special = true) const;

  // The text of `ids`; ill-formed UTF-8 becomes U+FFFD. Fails naming the first unknown id.
  std::string decode(std::span<const TokenId> ids, bool skip_special = false) const;

  // The bytes one token stands for: partial UTF-8 for byte-level pieces of a character. Fails
  // on an unknown id.
  std::string token_bytes(TokenId id) const;

  // A token by its vocabulary text (byte-level characters, e.g. "Ġthe") or added-token content.
  std::optional<TokenId> token_to_id(std::string_view token) const;
  // The vocabulary text or added-token content of `id`; fails on an unknown id.
  std::string id_to_token(TokenId id) const;
  bool is_special(TokenId id) const;

  // From tokenizer_config.json; fail when it did not name them.
  TokenId bos_id() const;
  TokenId eos_id() const;

  // One past the largest id of the vocabulary and the added tokens.
  size_t vocab_size() const;

  // The tokenizer.json this was loaded from (or the `source` given to from_json).
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
