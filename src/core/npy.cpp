#include "core/npy.h"

#include <cstring>
#include <fstream>
#include <numeric>
#include <regex>
#include <string>

#include "core/error.h"

namespace dsv4 {
namespace {

template <typename T>
void convert(const std::vector<char>& bytes, std::vector<float>& out) {
  const size_t n = bytes.size() / sizeof(T);
  out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = float(value);
  }
}

}  // namespace

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("{}: cannot open", path.string());
  char magic[8];
  file.read(magic, 8);
  if (!file || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail("{}: not a .npy file", path.string());
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t len16;
    file.read(reinterpret_cast<char*>(&len16), 2);
    header_len = len16;
  } else {
    file.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  file.read(header.data(), header_len);
  std::smatch match;
  if (!std::regex_search(header, match, std::regex("'descr':\\s*'([^']+)'")))
    fail("{}: header has no descr", path.string());
  const std::string descr = match[1];
  if (header.find("'fortran_order': True") != std::string::npos)
    fail("{}: Fortran order is not supported", path.string());
  if (!std::regex_search(header, match, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    fail("{}: header has no shape", path.string());
  NpyArray array;
  const std::string dims = match[1];
  std::regex number("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number);
       it != std::sregex_iterator(); ++it) {
    array.shape.push_back(std::stoll(it->str()));
  }
  const int64_t count =
      std::accumulate(array.shape.begin(), array.shape.end(), int64_t{1}, std::multiplies<>());
  size_t item = descr == "<f4" || descr == "<i4" ? 4 : (descr == "<f8" || descr == "<i8" ? 8 : 0);
  if (item == 0) fail("{}: unsupported dtype {}", path.string(), descr);
  std::vector<char> bytes(size_t(count) * item);
  file.read(bytes.data(), std::streamsize(bytes.size()));
  if (!file) fail("{}: truncated data", path.string());
  if (descr == "<f4") convert<float>(bytes, array.data);
  if (descr == "<f8") convert<double>(bytes, array.data);
  if (descr == "<i4") convert<int32_t>(bytes, array.data);
  if (descr == "<i8") convert<int64_t>(bytes, array.data);
  return array;
}

void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
               const float* data) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims +=
        std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream file(path, std::ios::binary);
  if (!file) fail("{}: cannot write", path.string());
  const uint16_t header_len = uint16_t(header.size());
  file.write("\x93NUMPY\x01\x00", 8);
  file.write(reinterpret_cast<const char*>(&header_len), 2);
  file.write(header.data(), std::streamsize(header.size()));
  const int64_t count =
      std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  file.write(reinterpret_cast<const char*>(data), std::streamsize(size_t(count) * sizeof(float)));
  if (!file) fail("{}: write failed", path.string());
}

}  // namespace dsv4
