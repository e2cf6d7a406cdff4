// .npy reader/writer: NumPy format version 1.0, little-endian, C order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npy.h"
#include "reference.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class Npy : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("dsv4_npy_test_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string read_bytes(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), {});
  }
  void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream file(path, std::ios::binary);
    file.write(bytes.data(), std::streamsize(bytes.size()));
  }
  // A version 1.0 file built byte by byte, independent of write_npy.
  std::string make_npy(const std::string& dict, const std::string& payload) {
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
    header.push_back('\n');
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes.push_back(char(header.size() & 0xff));
    bytes.push_back(char(header.size() >> 8));
    return bytes + header + payload;
  }
  template <typename T>
  std::string raw(const std::vector<T>& values) {
    std::string bytes(values.size() * sizeof(T), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }

  fs::path dir_;
};

TEST_F(Npy, WriteThenReadRoundTripsA2DFloatArray) {
  const std::vector<float> data = {0.0f, -0.0f, 1.0f,    -2.5f,    3.0e-38f, 1.0e38f,
                                   0.1f, 7.0f,  -1e-45f, 123456.f, -0.3f,    42.0f};
  const fs::path path = dir_ / "a.npy";
  write_npy(path, {3, 4}, data.data());
  const NpyArray array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<int64_t>{3, 4}));
  ASSERT_EQ(array.data.size(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(test::bits_of(array.data[i]), test::bits_of(data[i])) << i;
  }
}

TEST_F(Npy, WrittenFileHasAlignedVersion1Header) {
  const std::vector<float> data = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  const fs::path path = dir_ / "b.npy";
  write_npy(path, {2, 3}, data.data());
  const std::string bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  ASSERT_EQ(bytes.size(), 10 + header_len + data.size() * 4);
  const std::string header = bytes.substr(10, header_len);
  EXPECT_EQ(header.back(), '\n');
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (2, 3)"), std::string::npos) << header;
  EXPECT_EQ(bytes.substr(10 + header_len), raw(data));
}

TEST_F(Npy, OneDimensionalShapeHasTrailingComma) {
  const std::vector<float> data = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  const fs::path path = dir_ / "c.npy";
  write_npy(path, {5}, data.data());
  EXPECT_NE(read_bytes(path).find("'shape': (5,)"), std::string::npos);
  const NpyArray array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(array.data, data);
}

TEST_F(Npy, ReadsHandBuiltFilesOfEveryDtype) {
  const fs::path path = dir_ / "d.npy";
  write_bytes(path, make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
                             raw(std::vector<int32_t>{1, -2, 3, 40000})));
  NpyArray array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(array.data, (std::vector<float>{1.0f, -2.0f, 3.0f, 40000.0f}));

  write_bytes(path, make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                             raw(std::vector<double>{0.5, -1.25, 1e300})));
  array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(array.data[0], 0.5f);
  EXPECT_EQ(array.data[1], -1.25f);
  EXPECT_EQ(array.data[2], std::numeric_limits<float>::infinity());

  write_bytes(path, make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
                             raw(std::vector<int64_t>{-7, 1 << 20})));
  array = read_npy(path);
  EXPECT_EQ(array.shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(array.data, (std::vector<float>{-7.0f, 1048576.0f}));
}

// Runs read_npy and returns the error message (empty if it did not throw dsv4::Error).
std::string read_error(const fs::path& path) {
  try {
    read_npy(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(Npy, BadMagicFailsNamingTheFile) {
  const fs::path path = dir_ / "not_numpy.npy";
  write_bytes(path, "PK\x03\x04 this is a zip file, not an npy file at all");
  const std::string message = read_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

TEST_F(Npy, MissingFileFailsNamingTheFile) {
  const fs::path path = dir_ / "does_not_exist.npy";
  const std::string message = read_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

TEST_F(Npy, TruncatedDataFailsNamingTheFile) {
  const fs::path path = dir_ / "short.npy";
  write_bytes(path, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                             raw(std::vector<float>{1.0f, 2.0f})));
  const std::string message = read_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

TEST_F(Npy, UnsupportedDtypeFailsNamingTheFileAndDtype) {
  const fs::path path = dir_ / "half.npy";
  write_bytes(path, make_npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
                             std::string(4, '\0')));
  const std::string message = read_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("<f2"), std::string::npos) << message;
}

TEST_F(Npy, FortranOrderIsRejected) {
  const fs::path path = dir_ / "fortran.npy";
  write_bytes(path, make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                             raw(std::vector<float>{1, 2, 3, 4})));
  EXPECT_NE(read_error(path).find(path.string()), std::string::npos);
}

}  // namespace
}  // namespace dsv4
