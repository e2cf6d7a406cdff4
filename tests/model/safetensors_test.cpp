#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using test::error_message;

// Writes a raw file: 8-byte little-endian header length, header text, data.
void write_raw(const std::filesystem::path& path, const std::string& header,
               const std::vector<uint8_t>& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t length = header.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
}

std::vector<float> floats_of(const TensorView& view) {
  std::vector<float> out(view.bytes.size() / 4);
  std::memcpy(out.data(), view.bytes.data(), view.bytes.size());
  return out;
}

TEST(Safetensors, ReadsHandWrittenHeader) {
  test::TempDir dir;
  const float values[3] = {1.5f, -2.0f, 0.25f};
  std::vector<uint8_t> data(12);
  std::memcpy(data.data(), values, 12);
  data.push_back(7);
  write_raw(dir / "t.safetensors",
            R"({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [3],)"
            R"( "data_offsets": [0, 12]}, "b": {"dtype": "U8", "shape": [1, 1],)"
            R"( "data_offsets": [12, 13]}})",
            data);
  const SafetensorsFile file(dir / "t.safetensors");
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[0].name, "a");
  EXPECT_EQ(file.tensors()[0].dtype, DType::kF32);
  EXPECT_EQ(file.tensors()[0].shape, std::vector<int64_t>({3}));
  EXPECT_EQ(floats_of(file.tensors()[0]), std::vector<float>({1.5f, -2.0f, 0.25f}));
  EXPECT_EQ(file.tensors()[1].dtype, DType::kU8);
  EXPECT_EQ(file.tensors()[1].bytes[0], 7);
  EXPECT_EQ(file.metadata().at("format"), "pt");
}

TEST(Safetensors, EveryDtypeNameRoundTrips) {
  const std::vector<std::pair<const char*, size_t>> names = {
      {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E8M0", 1}, {"I8", 1},
      {"U8", 1},  {"I16", 2}, {"I32", 4},  {"I64", 8},     {"BOOL", 1}};
  for (const auto& [name, size] : names) {
    const auto dtype = dtype_from_name(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_STREQ(dtype_name(*dtype), name);
    EXPECT_EQ(dtype_size(*dtype), size) << name;
  }
  EXPECT_FALSE(dtype_from_name("F64").has_value());
}

TEST(Safetensors, WriterOutputReadsBack) {
  test::TempDir dir;
  SafetensorsWriter writer;
  const std::vector<float> weights = {1.0f, 2.5f, -3.0f, 0.0f, 1e-3f, 7.0f};
  const std::vector<int64_t> ids = {5, -1, 1LL << 40};
  writer.add_f32("w", {2, 3}, weights);
  writer.add_bf16("b", {2, 3}, weights);
  writer.add_i64("ids", {3}, ids);
  writer.write(dir / "w.safetensors");
  const SafetensorsFile file(dir / "w.safetensors");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(floats_of(file.tensors()[0]), weights);
  EXPECT_EQ(file.tensors()[1].dtype, DType::kBF16);
  EXPECT_EQ(file.tensors()[1].bytes.size(), 12u);
  int64_t third;
  std::memcpy(&third, file.tensors()[2].bytes.data() + 16, 8);
  EXPECT_EQ(third, 1LL << 40);
}

TEST(Safetensors, WriterAlignsDataToEightBytes) {
  test::TempDir dir;
  SafetensorsWriter writer;
  writer.add("x", DType::kU8, {1}, {42});
  writer.write(dir / "x.safetensors");
  std::ifstream in(dir / "x.safetensors", std::ios::binary);
  uint64_t header_length = 0;
  in.read(reinterpret_cast<char*>(&header_length), 8);
  EXPECT_EQ(header_length % 8, 0u);
}

TEST(Safetensors, TruncatedFileNamesFirstTensorThatDoesNotFit) {
  test::TempDir dir;
  SafetensorsWriter writer;
  writer.add_f32("first", {4}, std::vector<float>(4, 1.0f));
  writer.add_f32("second", {4}, std::vector<float>(4, 2.0f));
  writer.add_f32("third", {4}, std::vector<float>(4, 3.0f));
  writer.write(dir / "t.safetensors");
  std::filesystem::resize_file(dir / "t.safetensors",
                               std::filesystem::file_size(dir / "t.safetensors") - 20);
  const std::string message = error_message([&] { SafetensorsFile file(dir / "t.safetensors"); });
  EXPECT_NE(message.find((dir / "t.safetensors").string()), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'second'"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(Safetensors, ByteCountMustMatchDtypeAndShape) {
  test::TempDir dir;
  write_raw(dir / "t.safetensors",
            R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 6]}})",
            std::vector<uint8_t>(6));
  const std::string message = error_message([&] { SafetensorsFile file(dir / "t.safetensors"); });
  EXPECT_NE(message.find("tensor 'w' has 6 bytes but BF16 x [2, 2] needs 8"), std::string::npos)
      << message;
}

TEST(Safetensors, UnknownDtypeIsNamed) {
  test::TempDir dir;
  write_raw(dir / "t.safetensors",
            R"({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}})",
            std::vector<uint8_t>(8));
  const std::string message = error_message([&] { SafetensorsFile file(dir / "t.safetensors"); });
  EXPECT_NE(message.find("tensor 'w': unknown dtype 'C64'"), std::string::npos) << message;
}

TEST(Safetensors, HeaderLongerThanFileIsReported) {
  test::TempDir dir;
  write_raw(dir / "t.safetensors", "{}", {});
  std::fstream patch(dir / "t.safetensors", std::ios::binary | std::ios::in | std::ios::out);
  const uint64_t claimed = 65535;
  patch.write(reinterpret_cast<const char*>(&claimed), 8);
  patch.close();
  const std::string message = error_message([&] { SafetensorsFile file(dir / "t.safetensors"); });
  EXPECT_NE(message.find("header length 65535 does not fit"), std::string::npos) << message;
}

TEST(Safetensors, TinyFileIsReported) {
  test::TempDir dir;
  std::ofstream(dir / "t.safetensors") << "abc";
  const std::string message = error_message([&] { SafetensorsFile file(dir / "t.safetensors"); });
  EXPECT_NE(message.find("too short"), std::string::npos) << message;
}

TEST(Safetensors, ViewsOutliveTheirFileObject) {
  test::TempDir dir;
  SafetensorsWriter writer;
  writer.add_f32("w", {2}, std::vector<float>{3.0f, 4.0f});
  writer.write(dir / "w.safetensors");
  TensorView view;
  {
    const SafetensorsFile file(dir / "w.safetensors");
    view = file.tensors()[0];
  }
  EXPECT_EQ(floats_of(view), std::vector<float>({3.0f, 4.0f}));
}

void write_one(const std::filesystem::path& path, const std::string& name, float value) {
  SafetensorsWriter writer;
  writer.add_f32(name, {1}, std::vector<float>{value});
  writer.write(path);
}

TEST(TensorStore, ShardedIndexFindsEveryTensor) {
  test::TempDir dir;
  write_one(dir / "model-1.safetensors", "a", 1.0f);
  write_one(dir / "model-2.safetensors", "b", 2.0f);
  test::write_text(dir / "model.safetensors.index.json",
                   R"({"metadata": {}, "weight_map": {"a": "model-1.safetensors",)"
                   R"( "b": "model-2.safetensors"}})");
  const TensorStore store = TensorStore::open_directory(dir.path());
  EXPECT_EQ(store.files().size(), 2u);
  ASSERT_NE(store.find("b"), nullptr);
  EXPECT_EQ(floats_of(*store.find("b")), std::vector<float>({2.0f}));
  EXPECT_EQ(store.find("b")->file().filename(), "model-2.safetensors");
  EXPECT_EQ(store.find("c"), nullptr);
}

TEST(TensorStore, IndexEntryMissingFromItsShardIsReported) {
  test::TempDir dir;
  write_one(dir / "model-1.safetensors", "a", 1.0f);
  test::write_text(dir / "model.safetensors.index.json",
                   R"({"weight_map": {"a": "model-1.safetensors", "z": "model-1.safetensors"}})");
  const std::string message = error_message([&] { TensorStore::open_directory(dir.path()); });
  EXPECT_NE(message.find("tensor 'z' is listed in shard 'model-1.safetensors'"), std::string::npos)
      << message;
}

TEST(TensorStore, IndexNamingMissingShardIsReported) {
  test::TempDir dir;
  test::write_text(dir / "model.safetensors.index.json",
                   R"({"weight_map": {"a": "model-9.safetensors"}})");
  const std::string message = error_message([&] { TensorStore::open_directory(dir.path()); });
  EXPECT_NE(message.find("shard 'model-9.safetensors' does not exist"), std::string::npos)
      << message;
}

TEST(TensorStore, SingleModelSafetensorsIsUsed) {
  test::TempDir dir;
  write_one(dir / "model.safetensors", "a", 1.0f);
  write_one(dir / "stray.safetensors", "a", 9.0f);
  const TensorStore store = TensorStore::open_directory(dir.path());
  EXPECT_EQ(store.files().size(), 1u);
  EXPECT_EQ(floats_of(*store.find("a")), std::vector<float>({1.0f}));
}

TEST(TensorStore, WithoutIndexEverySafetensorsFileIsRead) {
  test::TempDir dir;
  write_one(dir / "x.safetensors", "a", 1.0f);
  write_one(dir / "y.safetensors", "b", 2.0f);
  const TensorStore store = TensorStore::open_directory(dir.path());
  EXPECT_EQ(store.tensors().size(), 2u);
  EXPECT_EQ(store.tensors()[0].name, "a");
}

TEST(TensorStore, DuplicateNameAcrossShardsIsReported) {
  test::TempDir dir;
  write_one(dir / "x.safetensors", "same", 1.0f);
  write_one(dir / "y.safetensors", "same", 2.0f);
  const std::string message = error_message([&] { TensorStore::open_directory(dir.path()); });
  EXPECT_NE(message.find("tensor 'same' appears in both"), std::string::npos) << message;
  EXPECT_NE(message.find("x.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("y.safetensors"), std::string::npos) << message;
}

TEST(TensorStore, DirectoryWithoutSafetensorsIsReported) {
  test::TempDir dir;
  EXPECT_EQ(error_message([&] { TensorStore::open_directory(dir.path()); }),
            dir.path().string() + ": no .safetensors files in the model directory");
}

TEST(TensorStore, MissingDirectoryIsReported) {
  EXPECT_EQ(error_message([] { TensorStore::open_directory("/nonexistent/dsv4-x"); }),
            "/nonexistent/dsv4-x: model directory does not exist");
}

}  // namespace
}  // namespace dsv4
