// safetensors files (8-byte header length, JSON header, raw little-endian data) read through a
// memory mapping, and the set of files that makes up one checkpoint directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/mapped_file.h"

namespace dsv4 {

enum class DType { kF32, kF16, kBF16, kF8E4M3, kF8E8M0, kI8, kU8, kI16, kI32, kI64, kBool };
const char* dtype_name(DType dtype);  // the safetensors spelling: "F32", "F8_E4M3", ...
size_t dtype_size(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);

std::string shape_string(const std::vector<int64_t>& shape);  // "[4, 128]"

// One tensor inside a mapped file; `mapping` keeps `bytes` valid for as long as the view lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
  std::shared_ptr<const MappedFile> mapping;

  const std::filesystem::path& file() const { return mapping->path(); }
  int64_t element_count() const;
};

// Opens, maps and checks one file: every tensor's byte range must lie inside the file and be
// exactly dtype size x element count.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return mapping_->path(); }
  uint64_t size_bytes() const { return mapping_->bytes().size(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in data order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<const MappedFile> mapping_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of a checkpoint directory, by name. The files are found through
// model.safetensors.index.json (weight_map: tensor -> shard), else model.safetensors, else
// every *.safetensors in the directory. A name found in two files is an error.
class TensorStore {
 public:
  static TensorStore open_directory(const std::filesystem::path& dir);
  // A store over explicit files, in the given order.
  static TensorStore open_files(const std::vector<std::filesystem::path>& files);

  const TensorView* find(const std::string& name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }  // sorted by name
  const std::vector<std::filesystem::path>& files() const { return files_; }
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  void add_file(const SafetensorsFile& file);
  void finish();

  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::vector<std::filesystem::path> files_;
  uint64_t file_bytes_ = 0;
};

}  // namespace dsv4
