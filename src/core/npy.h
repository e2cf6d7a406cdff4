// Minimal NumPy .npy reader/writer (little-endian, C order) for logits and test fixtures.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace dsv4 {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // every supported dtype (<f4, <f8, <i4, <i8) converted to float
};

NpyArray read_npy(const std::filesystem::path& path);
void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
               const float* data);

}  // namespace dsv4
