#include "model/safetensors_writer.h"

#include <bit>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/formats.h"

namespace dsv4 {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

template <typename T>
std::vector<uint8_t> raw_bytes(std::span<const T> values) {
  std::vector<uint8_t> bytes(values.size_bytes());
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

}  // namespace

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  int64_t count = 1;
  for (const int64_t dim : shape) count *= dim;
  if (bytes.size() != uint64_t(count) * dtype_size(dtype)) {
    fail("safetensors writer: tensor '{}' has {} bytes but {} x {} needs {}", name, bytes.size(),
         dtype_name(dtype), shape_string(shape), uint64_t(count) * dtype_size(dtype));
  }
  if (!names_.insert(name).second) fail("safetensors writer: tensor '{}' added twice", name);
  tensors_.push_back(Entry{std::move(name), dtype, std::move(shape), std::move(bytes)});
}

void SafetensorsWriter::add_f32(std::string name, std::vector<int64_t> shape,
                                std::span<const float> values) {
  add(std::move(name), DType::kF32, std::move(shape), raw_bytes(values));
}

void SafetensorsWriter::add_bf16(std::string name, std::vector<int64_t> shape,
                                 std::span<const float> values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = float_to_bf16(values[i]);
  add(std::move(name), DType::kBF16, std::move(shape), raw_bytes(std::span<const uint16_t>(bits)));
}

void SafetensorsWriter::add_i32(std::string name, std::vector<int64_t> shape,
                                std::span<const int32_t> values) {
  add(std::move(name), DType::kI32, std::move(shape), raw_bytes(values));
}

void SafetensorsWriter::add_i64(std::string name, std::vector<int64_t> shape,
                                std::span<const int64_t> values) {
  add(std::move(name), DType::kI64, std::move(shape), raw_bytes(values));
}

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t total = 0;
  for (const Entry& entry : tensors_) total += entry.bytes.size();
  return total;
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> out;
  for (const Entry& entry : tensors_) out.push_back(entry.name);
  return out;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& entry : tensors_) {
    header[entry.name] = {{"dtype", dtype_name(entry.dtype)},
                          {"shape", entry.shape},
                          {"data_offsets", {offset, offset + entry.bytes.size()}}};
    offset += entry.bytes.size();
  }
  std::string text = header.dump();
  // The format pads the header with spaces so that the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot create", path.string());
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(length), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const Entry& entry : tensors_) {
    out.write(reinterpret_cast<const char*>(entry.bytes.data()),
              std::streamsize(entry.bytes.size()));
  }
  if (!out) fail("{}: write failed", path.string());
}

}  // namespace dsv4
