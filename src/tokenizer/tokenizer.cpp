#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv4 {

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot open {}", path.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) fail("cannot read {}", path.string());
  return std::move(contents).str();
}

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    fail("{}: malformed JSON: {}", source, error.what());
  }
}

bool is_identity_normalizer(const nlohmann::json& normalizer) {
  return normalizer.is_null() ||
         (normalizer.value("type", "") == "Sequence" && normalizer.contains("normalizers") &&
          std::all_of(normalizer["normalizers"].begin(), normalizer["normalizers"].end(),
                      is_identity_normalizer));
}

bool is_byte_level_decoder(const nlohmann::json& decoder) {
  if (decoder.value("type", "") == "ByteLevel") return true;
  return decoder.value("type", "") == "Sequence" && decoder.contains("decoders") &&
         decoder["decoders"].size() == 1 && is_byte_level_decoder(decoder["decoders"][0]);
}

// tokenizer_config.json spells a token as a string or as {"content": ...}.
std::optional<std::string> configured_token(const nlohmann::json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const nlohmann::json& value = config[key];
  return value.is_string() ? value.get<std::string>() : value.at("content").get<std::string>();
}

// Buffers of one thread's encode calls.
struct EncodeScratch {
  std::vector<TextSegment> segments;
  PreTokenizerScratch pre_tokenizer;
  std::vector<std::string_view> pieces;
};

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  BpeModel model;
  AddedVocabulary added;
  PreTokenizer pre_tokenizer;
  std::optional<TokenId> bos, eos;
  size_t vocab_size = 0;

  Impl(const nlohmann::json& json, const nlohmann::json& config, std::string source_name)
      : source(std::move(source_name)),
        model(json.at("model"), source),
        added(json.value("added_tokens", nlohmann::json::array()), model, source),
        pre_tokenizer(json.at("pre_tokenizer"), source) {
    if (!is_identity_normalizer(json.value("normalizer", nlohmann::json()))) {
      fail("{}: normalizer {} is not supported", source, json["normalizer"].dump());
    }
    if (!is_byte_level_decoder(json.value("decoder", nlohmann::json()))) {
      fail("{}: decoder {} is not supported (only ByteLevel is)", source,
           json.value("decoder", nlohmann::json()).dump());
    }
    vocab_size = model.id_limit();
    for (const AddedToken& token : added.tokens()) {
      vocab_size = std::max(vocab_size, static_cast<size_t>(token.id) + 1);
    }
    bos = resolve_configured(config, "bos_token");
    eos = resolve_configured(config, "eos_token");
  }

  std::optional<TokenId> token_to_id(std::string_view token) const {
    if (const auto id = added.token_to_id(token)) return id;
    return model.token_to_id(token);
  }

  std::optional<TokenId> resolve_configured(const nlohmann::json& config, const char* key) const {
    const auto token = configured_token(config, key);
    if (!token) return std::nullopt;
    const auto id = token_to_id(*token);
    if (!id) fail("{}: the {} {:?} of tokenizer_config.json is not a token", source, key, *token);
    return id;
  }

  // HF's byte-level decoder, token by token: a token made of byte-level characters stands for
  // those bytes; any other (an added token such as "<｜User｜>") for its own UTF-8.
  void append_token_bytes(TokenId id, std::string& out) const {
    const std::string* text = nullptr;
    if (const AddedToken* token = added.find(id)) {
      text = &token->content;
    } else {
      text = model.token_text(id);
    }
    if (text == nullptr) {
      fail("token id {} is not in the vocabulary of {} (ids 0..{})", id, source, vocab_size - 1);
    }
    if (!ByteLevelAlphabet::instance().append_bytes(*text, out)) out += *text;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "tokenizer.json";
    if (!std::filesystem::exists(file)) fail("no tokenizer.json in directory {}", path.string());
  } else if (!std::filesystem::exists(path)) {
    fail("tokenizer file {} does not exist", path.string());
  }
  const std::filesystem::path config_file = file.parent_path() / "tokenizer_config.json";
  const std::string config =
      std::filesystem::exists(config_file) ? read_file(config_file) : std::string();
  return from_json(read_file(file), config, file.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& source) {
  const nlohmann::json json = parse_json(tokenizer_json, source);
  const std::string config_source = source + " (tokenizer_config.json)";
  const nlohmann::json config =
      config_json.empty() ? nlohmann::json::object() : parse_json(config_json, config_source);
  try {
    return Tokenizer(std::make_unique<Impl>(json, config, source));
  } catch (const nlohmann::json::exception& error) {
    // A missing key or a value of the wrong type.
    fail("{}: unexpected content: {}", source, error.what());
  }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool parse_special) const {
  if (const size_t invalid = find_invalid_utf8(text); invalid != std::string_view::npos) {
    fail("cannot encode: the text is not valid UTF-8 (byte {} of {})", invalid, text.size());
  }
  thread_local EncodeScratch scratch;
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3);
  impl_->added.split(text, parse_special, scratch.segments);
  for (const TextSegment& segment : scratch.segments) {
    if (segment.token >= 0) {
      ids.push_back(segment.token);
      continue;
    }
    impl_->pre_tokenizer.split(segment.text, scratch.pre_tokenizer, scratch.pieces);
    for (const std::string_view piece : scratch.pieces) impl_->model.encode_piece(piece, ids);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::string bytes;
  for (const TokenId id : ids) {
    if (skip_special && is_special(id)) continue;
    impl_->append_token_bytes(id, bytes);
  }
  std::string text;
  append_utf8_lossy(bytes, text);
  return text;
}

std::string Tokenizer::token_bytes(TokenId id) const {
  std::string bytes;
  impl_->append_token_bytes(id, bytes);
  return bytes;
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->token_to_id(token);
}

std::string Tokenizer::id_to_token(TokenId id) const {
  if (const AddedToken* token = impl_->added.find(id)) return token->content;
  if (const std::string* text = impl_->model.token_text(id)) return *text;
  fail("token id {} is not in the vocabulary of {} (ids 0..{})", id, impl_->source,
       impl_->vocab_size - 1);
}

bool Tokenizer::is_special(TokenId id) const {
  const AddedToken* token = impl_->added.find(id);
  return token != nullptr && token->special;
}

TokenId Tokenizer::bos_id() const {
  if (!impl_->bos) fail("{}: no bos_token in a tokenizer_config.json beside it", impl_->source);
  return *impl_->bos;
}

TokenId Tokenizer::eos_id() const {
  if (!impl_->eos) fail("{}: no eos_token in a tokenizer_config.json beside it", impl_->source);
  return *impl_->eos;
}

size_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}

const std::string& Tokenizer::source() const {
  return impl_->source;
}

}  // namespace dsv4
