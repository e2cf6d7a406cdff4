// A read-only memory mapping of a whole file (POSIX mmap). Checkpoints are read through it so
// that tensors are paged in on demand and never copied before decoding.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace dsv4 {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dsv4
