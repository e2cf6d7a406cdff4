// Builds safetensors files in memory and writes them out: the test fixtures, the checkpoint
// writer and tools use it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "model/safetensors.h"

namespace dsv4 {

class SafetensorsWriter {
 public:
  // `bytes` must hold exactly dtype size x element count bytes (little-endian).
  void add(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  void add_f32(std::string name, std::vector<int64_t> shape, std::span<const float> values);
  // Rounds each value to the nearest bf16.
  void add_bf16(std::string name, std::vector<int64_t> shape, std::span<const float> values);
  void add_i32(std::string name, std::vector<int64_t> shape, std::span<const int32_t> values);
  void add_i64(std::string name, std::vector<int64_t> shape, std::span<const int64_t> values);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  uint64_t data_bytes() const;
  std::vector<std::string> names() const;  // in the order added

  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> tensors_;
  std::unordered_set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dsv4
