#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <mutex>

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace dsv4 {

namespace {

// Longer pieces are rare (long words, digit-free runs of symbols) and not worth remembering.
constexpr size_t kLongestCachedPiece = 256;
constexpr size_t kCacheEntries = size_t{1} << 17;

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// A symbol of the word being merged: a doubly linked list over the piece's bytes.
struct Symbol {
  TokenId id;
  int32_t previous, next;
  bool merged_away;
};

// A pending merge of the symbol at `position` with its successor.
struct PendingMerge {
  int32_t rank, position;
  TokenId merged;
  // std::push_heap builds a max-heap; the lowest rank, then the leftmost position, comes first.
  bool operator<(const PendingMerge& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

std::pair<std::string, std::string> parse_merge(const nlohmann::json& merge, size_t rank,
                                                const std::string& source) {
  if (merge.is_array() && merge.size() == 2) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  if (merge.is_string()) {
    const auto& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space != std::string::npos && text.find(' ', space + 1) == std::string::npos) {
      return {text.substr(0, space), text.substr(space + 1)};
    }
  }
  fail("{}: merge #{} ({}) is not a pair of tokens", source, rank, merge.dump());
}

}  // namespace

void BpeModel::MergeTable::reserve(size_t merges) {
  size_t capacity = 16;
  shift_ = 60;
  while (capacity < merges * 2) {
    capacity *= 2;
    --shift_;
  }
  slots_.assign(capacity, Slot{kEmpty, {}});
}

size_t BpeModel::MergeTable::slot_of(uint64_t key) const {
  // Fibonacci hashing: the top bits of the product are well mixed.
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
}

void BpeModel::MergeTable::insert(TokenId left, TokenId right, Merge merge) {
  const uint64_t key = pair_key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t slot = slot_of(key);; slot = (slot + 1) & mask) {
    if (slots_[slot].key == kEmpty || slots_[slot].key == key) {
      // A repeated pair takes the later rank, as HF's merge map does.
      slots_[slot] = Slot{key, merge};
      return;
    }
  }
}

const BpeModel::MergeTable::Merge* BpeModel::MergeTable::find(TokenId left, TokenId right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t slot = slot_of(key);; slot = (slot + 1) & mask) {
    if (slots_[slot].key == key) return &slots_[slot].merge;
    if (slots_[slot].key == kEmpty) return nullptr;
  }
}

bool BpeModel::PieceCache::append(std::string_view piece, std::vector<TokenId>& out) const {
  std::shared_lock lock(mutex_);
  const auto it = map_.find(piece);
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeModel::PieceCache::insert(std::string_view piece, const TokenId* ids, size_t count) {
  std::unique_lock lock(mutex_);
  if (map_.size() >= kCacheEntries) map_.clear();
  map_.try_emplace(std::string(piece), ids, ids + count);
}

BpeModel::BpeModel(const nlohmann::json& model, const std::string& source) {
  if (model.value("type", "BPE") != "BPE") {
    fail("{}: model type {:?} is not supported (only BPE is)", source,
         model.at("type").get<std::string>());
  }
  for (const char* option : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(option) && !model.at(option).is_null()) {
      fail("{}: BPE option {:?} is not supported", source, option);
    }
  }
  ignore_merges_ = model.value("ignore_merges", false);

  const nlohmann::json& vocab = model.at("vocab");
  vocab_.reserve(vocab.size());
  for (const auto& [text, id_json] : vocab.items()) {
    const auto id = id_json.get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail("{}: token {:?} has an invalid id {}", source, text, id);
    vocab_.emplace(text, static_cast<TokenId>(id));
    if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
    tokens_[static_cast<size_t>(id)] = text;
  }

  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::instance();
  for (int byte = 0; byte < 256; ++byte) {
    const auto id = token_to_id(alphabet.char_for(static_cast<uint8_t>(byte)));
    if (!id) fail("{}: the vocabulary has no token for byte 0x{:02X}", source, byte);
    byte_tokens_[static_cast<size_t>(byte)] = *id;
  }

  const nlohmann::json& merges = model.at("merges");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = parse_merge(merges[rank], rank, source);
    const auto left_id = token_to_id(left), right_id = token_to_id(right);
    const auto merged_id = token_to_id(left + right);
    if (!left_id || !right_id || !merged_id) {
      fail("{}: merge #{} ({:?} {:?}) uses a token missing from the vocabulary", source, rank, left,
           right);
    }
    merges_.insert(*left_id, *right_id, {static_cast<int32_t>(rank), *merged_id});
  }
}

std::optional<TokenId> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::token_text(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return nullptr;
  const std::string& text = tokens_[static_cast<size_t>(id)];
  return text.empty() ? nullptr : &text;
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<TokenId>& out) const {
  if (bytes.size() == 1) {
    out.push_back(byte_tokens_[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  const bool cacheable = bytes.size() <= kLongestCachedPiece;
  if (cacheable && cache_.append(bytes, out)) return;
  const size_t first = out.size();
  if (ignore_merges_) {
    // A piece that is a whole vocabulary token is taken as is, merges notwithstanding.
    std::string text;
    for (const char byte : bytes) text += ByteLevelAlphabet::instance().char_for(uint8_t(byte));
    if (const auto id = token_to_id(text)) {
      out.push_back(*id);
    } else {
      merge_symbols(bytes, out);
    }
  } else {
    merge_symbols(bytes, out);
  }
  if (cacheable) cache_.insert(bytes, out.data() + first, out.size() - first);
}

void BpeModel::merge_symbols(std::string_view bytes, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<PendingMerge> queue;
  const auto count = static_cast<int32_t>(bytes.size());
  symbols.resize(bytes.size());
  queue.clear();
  for (int32_t i = 0; i < count; ++i) {
    symbols[i] = {byte_tokens_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < count ? i + 1 : -1,
                  false};
  }
  for (int32_t i = 0; i + 1 < count; ++i) {
    if (const auto* merge = merges_.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push_back({merge->rank, i, merge->merged});
    }
  }
  std::make_heap(queue.begin(), queue.end());
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    const PendingMerge top = queue.back();
    queue.pop_back();
    Symbol& left = symbols[top.position];
    if (left.merged_away || left.next < 0) continue;
    // Stale entries (either symbol changed since the entry was queued) no longer name this
    // merge.
    Symbol& right = symbols[left.next];
    const auto* current = merges_.find(left.id, right.id);
    if (current == nullptr || current->merged != top.merged) continue;
    left.id = top.merged;
    right.merged_away = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].previous = top.position;
    if (left.previous >= 0) {
      if (const auto* merge = merges_.find(symbols[left.previous].id, left.id)) {
        queue.push_back({merge->rank, left.previous, merge->merged});
        std::push_heap(queue.begin(), queue.end());
      }
    }
    if (left.next >= 0) {
      if (const auto* merge = merges_.find(left.id, symbols[left.next].id)) {
        queue.push_back({merge->rank, top.position, merge->merged});
        std::push_heap(queue.begin(), queue.end());
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace dsv4
