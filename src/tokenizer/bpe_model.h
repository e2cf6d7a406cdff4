// Byte-level BPE (tokenizer.json's "model" of type "BPE"): the vocabulary, the merge ranks, and
// the encoding of one pre-tokenized piece by merging the lowest-ranked adjacent pair first, as
// HF tokenizers does. Pieces arrive as raw bytes; the initial symbols are the vocabulary ids
// of the byte-level characters standing for those bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/token_id.h"

namespace dsv4 {

// Hashing std::string keys by std::string_view, so that lookups need no temporary string.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

using TokenIdsByText = std::unordered_map<std::string, TokenId, StringViewHash, std::equal_to<>>;

class BpeModel {
 public:
  // `model` is tokenizer.json's "model"; `source` names the file in errors.
  BpeModel(const nlohmann::json& model, const std::string& source);
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one piece (raw bytes). Thread-safe.
  void encode_piece(std::string_view bytes, std::vector<TokenId>& out) const;

  std::optional<TokenId> token_to_id(std::string_view token) const;
  // The vocabulary text of `id` (byte-level characters), or nullptr when the id has none.
  const std::string* token_text(TokenId id) const;
  // One past the largest id.
  size_t id_limit() const { return tokens_.size(); }
  // The number of tokens in the vocabulary (HF's vocabulary size, which places added tokens).
  size_t vocab_entries() const { return vocab_.size(); }

 private:
  // Open-addressing table from an adjacent pair of ids to the merge's rank and result: the
  // hot lookup of BPE, kept flat for speed.
  class MergeTable {
   public:
    struct Merge {
      int32_t rank;
      TokenId merged;
    };
    void reserve(size_t merges);
    void insert(TokenId left, TokenId right, Merge merge);
    const Merge* find(TokenId left, TokenId right) const;

   private:
    struct Slot {
      uint64_t key;
      Merge merge;
    };
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    size_t slot_of(uint64_t key) const;
    std::vector<Slot> slots_;
    int shift_ = 64;
  };

  // Pieces already encoded (most text repeats its words); cleared when it grows too large.
  class PieceCache {
   public:
    bool append(std::string_view piece, std::vector<TokenId>& out) const;
    void insert(std::string_view piece, const TokenId* ids, size_t count);

   private:
    mutable std::shared_mutex mutex_;
    std::unordered_map<std::string, std::vector<TokenId>, StringViewHash, std::equal_to<>> map_;
  };

  void merge_symbols(std::string_view bytes, std::vector<TokenId>& out) const;

  TokenIdsByText vocab_;
  std::vector<std::string> tokens_;  // by id; empty for ids the vocabulary skips
  std::array<TokenId, 256> byte_tokens_{};
  MergeTable merges_;
  bool ignore_merges_ = false;
  mutable PieceCache cache_;
};

}  // namespace dsv4
