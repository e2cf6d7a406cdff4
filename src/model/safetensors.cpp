#include "model/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dsv4 {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr std::array<DTypeInfo, 11> kDTypes = {{
    {DType::kF32, "F32", 4},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E8M0, "F8_E8M0", 1},
    {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},
    {DType::kI16, "I16", 2},
    {DType::kI32, "I32", 4},
    {DType::kI64, "I64", 8},
    {DType::kBool, "BOOL", 1},
}};

const DTypeInfo& info(DType dtype) {
  for (const DTypeInfo& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  fail("unknown dtype {}", int(dtype));
}

// A header larger than this is certainly not a safetensors header.
constexpr uint64_t kMaxHeaderBytes = uint64_t(1) << 30;

// Element count of a shape, or nullopt on overflow.
std::optional<int64_t> checked_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) return std::nullopt;
    count *= dim;
  }
  return count;
}

struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

HeaderEntry parse_entry(const std::string& file, const std::string& name,
                        const nlohmann::json& entry) {
  auto bad = [&](const std::string& what) -> HeaderEntry {
    fail("{}: tensor '{}': {} in the header", file, name, what);
  };
  if (!entry.is_object()) return bad("entry is not an object");
  HeaderEntry out{name, DType::kF32, {}, 0, 0};
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) return bad("no dtype");
  const auto parsed = dtype_from_name(dtype->get<std::string>());
  if (!parsed) return bad(fmt::format("unknown dtype '{}'", dtype->get<std::string>()));
  out.dtype = *parsed;
  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) return bad("no shape");
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned()) return bad(fmt::format("bad shape {}", shape->dump()));
    out.shape.push_back(dim.get<int64_t>());
  }
  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return bad("no data_offsets [begin, end]");
  }
  out.begin = (*offsets)[0].get<uint64_t>();
  out.end = (*offsets)[1].get<uint64_t>();
  return out;
}

}  // namespace

const char* dtype_name(DType dtype) {
  return info(dtype).name;
}
size_t dtype_size(DType dtype) {
  return info(dtype).size;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DTypeInfo& entry : kDTypes) {
    if (name == entry.name) return entry.dtype;
  }
  return std::nullopt;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t TensorView::element_count() const {
  return checked_count(shape).value_or(-1);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : mapping_(std::make_shared<const MappedFile>(path)) {
  const std::string file = path.string();
  const std::span<const uint8_t> bytes = mapping_->bytes();
  if (bytes.size() < 8) fail("{}: too short for a safetensors file ({} bytes)", file, bytes.size());
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | bytes[size_t(i)];
  if (header_bytes > kMaxHeaderBytes || header_bytes > bytes.size() - 8) {
    fail("{}: header length {} does not fit in the file's {} bytes (truncated or not safetensors)",
         file, header_bytes, bytes.size());
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(header_bytes));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON: {}", file, e.what());
  }
  if (!header.is_object()) fail("{}: header is not a JSON object", file);

  std::vector<HeaderEntry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("{}: __metadata__ is not an object", file);
      for (const auto& [key, value] : entry.items()) {
        metadata_[key] = value.is_string() ? value.get<std::string>() : value.dump();
      }
      continue;
    }
    entries.push_back(parse_entry(file, name, entry));
  }
  // Check in data order so that a truncated file names the first tensor that does not fit.
  std::sort(entries.begin(), entries.end(),
            [](const HeaderEntry& a, const HeaderEntry& b) { return a.begin < b.begin; });
  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  const uint8_t* data = bytes.data() + 8 + header_bytes;
  for (HeaderEntry& entry : entries) {
    if (entry.end < entry.begin || entry.end > data_bytes) {
      fail(
          "{}: tensor '{}' occupies bytes [{}, {}) but the file holds only {} data bytes "
          "(truncated file?)",
          file, entry.name, entry.begin, entry.end, data_bytes);
    }
    const auto count = checked_count(entry.shape);
    const uint64_t expected = count ? uint64_t(*count) * dtype_size(entry.dtype) : 0;
    if (!count || entry.end - entry.begin != expected) {
      fail("{}: tensor '{}' has {} bytes but {} x {} needs {}", file, entry.name,
           entry.end - entry.begin, dtype_name(entry.dtype), shape_string(entry.shape), expected);
    }
    tensors_.push_back(TensorView{std::move(entry.name), entry.dtype, std::move(entry.shape),
                                  std::span<const uint8_t>(data + entry.begin, expected),
                                  mapping_});
  }
}

TensorStore TensorStore::open_files(const std::vector<std::filesystem::path>& files) {
  TensorStore store;
  for (const auto& path : files) store.add_file(SafetensorsFile(path));
  store.finish();
  return store;
}

TensorStore TensorStore::open_directory(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) fail("{}: model directory does not exist", dir.string());
  const std::filesystem::path index_path = dir / "model.safetensors.index.json";
  if (!std::filesystem::exists(index_path)) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::exists(dir / "model.safetensors")) {
      files.push_back(dir / "model.safetensors");
    } else {
      for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
    }
    if (files.empty()) fail("{}: no .safetensors files in the model directory", dir.string());
    return open_files(files);
  }

  const std::string index_name = index_path.string();
  nlohmann::json index;
  try {
    std::ifstream in(index_path);
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", index_name, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail("{}: no weight_map object", index_name);
  }
  std::set<std::string> shard_names;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail("{}: weight_map entry '{}' is not a file name", index_name, name);
    shard_names.insert(shard.get<std::string>());
  }
  std::vector<std::filesystem::path> files;
  for (const std::string& shard : shard_names) {
    if (!std::filesystem::is_regular_file(dir / shard)) {
      fail("{}: shard '{}' does not exist", index_name, shard);
    }
    files.push_back(dir / shard);
  }
  TensorStore store = open_files(files);
  for (const auto& [name, shard] : index["weight_map"].items()) {
    const TensorView* view = store.find(name);
    if (!view || view->file().filename() != shard.get<std::string>()) {
      fail("{}: tensor '{}' is listed in shard '{}', which does not contain it", index_name, name,
           shard.get<std::string>());
    }
  }
  return store;
}

void TensorStore::add_file(const SafetensorsFile& file) {
  files_.push_back(file.path());
  file_bytes_ += file.size_bytes();
  for (const TensorView& view : file.tensors()) {
    const auto [it, inserted] = by_name_.emplace(view.name, tensors_.size());
    if (!inserted) {
      fail("tensor '{}' appears in both {} and {}", view.name, tensors_[it->second].file().string(),
           file.path().string());
    }
    tensors_.push_back(view);
  }
}

void TensorStore::finish() {
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  by_name_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
}

const TensorView* TensorStore::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace dsv4
