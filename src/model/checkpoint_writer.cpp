#include "model/checkpoint_writer.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <type_traits>

#include "core/error.h"
#include "core/formats.h"
#include "model/config_json.h"
#include "model/safetensors_writer.h"
#include "model/tensor_names.h"
#include "model/tensor_schema.h"

namespace dsv4 {
namespace {

bool is_power_of_two(float value) {
  int exponent;
  return value > 0 && std::isfinite(value) && std::frexp(value, &exponent) == 0.5f;
}

std::vector<uint8_t> packed_e2m1(const LinearWeight& w, const std::string& name);

void add_scales(SafetensorsWriter& writer, const std::string& name, std::vector<int64_t> shape,
                const std::vector<float>& scales) {
  bool all_powers_of_two = true;
  for (const float s : scales) all_powers_of_two = all_powers_of_two && is_power_of_two(s);
  if (!all_powers_of_two) {
    writer.add_f32(name, std::move(shape), scales);
    return;
  }
  std::vector<uint8_t> codes(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) codes[i] = power_of_two_to_ue8m0(scales[i]);
  writer.add(name, DType::kF8E8M0, std::move(shape), std::move(codes));
}

template <typename Encode, typename Decode>
uint8_t exact_code(float value, Encode encode, Decode decode, const std::string& name,
                   const char* format) {
  const uint8_t code = encode(value);
  if (decode(code) != value) fail("{}: value {} is not an {} value", name, value, format);
  return code;
}

void add_linear(SafetensorsWriter& writer, const std::string& name, const std::string& stored,
                const LinearWeight& w) {
  const std::vector<int64_t> shape = {w.rows, w.cols};
  switch (w.format) {
    case WeightFormat::kF32:
      writer.add_f32(stored, shape, w.values);
      return;
    case WeightFormat::kBF16:
      writer.add_bf16(stored, shape, w.values);
      return;
    case WeightFormat::kFp8: {
      std::vector<uint8_t> codes(w.values.size());
      for (size_t i = 0; i < codes.size(); ++i) {
        codes[i] = exact_code(w.values[i], float_to_e4m3, e4m3_to_float, name, "e4m3");
      }
      writer.add(stored, DType::kF8E4M3, shape, std::move(codes));
      add_scales(writer, partner_tensor_name(stored, ".scale"),
                 {(w.rows + 127) / 128, (w.cols + 127) / 128}, w.scales);
      return;
    }
    case WeightFormat::kFp4:
      writer.add(stored, DType::kI8, {w.rows, w.cols / 2}, packed_e2m1(w, name));
      add_scales(writer, partner_tensor_name(stored, ".scale"), {w.rows, w.cols / 32}, w.scales);
      return;
    case WeightFormat::kNvFp4: {
      // As NVIDIA ModelOpt writes it: U8 packed e2m1, e4m3 scales, an fp32 global scale.
      writer.add(stored, DType::kU8, {w.rows, w.cols / 2}, packed_e2m1(w, name));
      std::vector<uint8_t> codes(w.scales.size());
      for (size_t i = 0; i < codes.size(); ++i) {
        codes[i] = exact_code(w.scales[i], float_to_e4m3, e4m3_to_float, name, "e4m3 scale");
      }
      writer.add(partner_tensor_name(stored, ".weight_scale"), DType::kF8E4M3,
                 {w.rows, w.cols / 16}, std::move(codes));
      writer.add_f32(partner_tensor_name(stored, ".weight_scale_2"), {},
                     std::vector<float>{w.global_scale});
      return;
    }
  }
}

std::vector<uint8_t> packed_e2m1(const LinearWeight& w, const std::string& name) {
  std::vector<uint8_t> packed(w.values.size() / 2);
  for (size_t i = 0; i < packed.size(); ++i) {
    const uint8_t low = exact_code(w.values[2 * i], float_to_e2m1, e2m1_to_float, name, "e2m1");
    const uint8_t high =
        exact_code(w.values[2 * i + 1], float_to_e2m1, e2m1_to_float, name, "e2m1");
    packed[i] = uint8_t(low | (high << 4));
  }
  return packed;
}

bool bf16_exact(const std::vector<float>& values) {
  for (const float v : values) {
    if (round_bf16(v) != v) return false;
  }
  return true;
}

// Adds to `writer` the tensors whose position in visit order falls in [first, last).
void add_tensors(SafetensorsWriter& writer, const ModelConfig& config, const ModelWeights& weights,
                 CheckpointLayout layout, size_t first, size_t last) {
  size_t index = 0;
  visit_tensors(config, weights,
                [&](const std::string& name, TensorRole role, const std::vector<int64_t>& shape,
                    const auto& field) {
                  const size_t position = index++;
                  if (position < first || position >= last) return;
                  const std::string stored = layout_tensor_name(name, layout);
                  using Field = std::remove_cvref_t<decltype(field)>;
                  if constexpr (std::is_same_v<Field, LinearWeight>) {
                    add_linear(writer, name, stored, field);
                  } else if constexpr (std::is_same_v<Field, std::vector<float>>) {
                    if (role == TensorRole::kNormWeight && bf16_exact(field)) {
                      writer.add_bf16(stored, shape, field);
                    } else {
                      writer.add_f32(stored, shape, field);
                    }
                  } else {
                    const std::vector<int64_t> ids(field.begin(), field.end());
                    writer.add_i64(stored, shape, ids);
                  }
                });
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) fail("{}: write failed", path.string());
}

size_t tensor_count(const ModelConfig& config, const ModelWeights& weights) {
  size_t count = 0;
  visit_tensors(
      config, weights,
      [&](const std::string&, TensorRole, const std::vector<int64_t>&, const auto&) { ++count; });
  return count;
}

}  // namespace

void write_checkpoint(const std::filesystem::path& dir, const ModelConfig& config,
                      const ModelWeights& weights, CheckpointLayout layout, int64_t shards) {
  if (shards < 1) fail("write_checkpoint: shards must be at least 1 (got {})", shards);
  std::filesystem::create_directories(dir);
  write_text(dir / "config.json", config_to_json(config, layout).dump(2) + "\n");
  const size_t count = tensor_count(config, weights);
  // One shard at a time, so that only one shard's encoded bytes are held in memory.
  auto write_shard = [&](const std::string& file, size_t first, size_t last) {
    SafetensorsWriter writer;
    writer.set_metadata("format", "pt");  // transformers refuses files without it
    add_tensors(writer, config, weights, layout, first, last);
    writer.write(dir / file);
    return writer;
  };
  if (shards == 1) {
    write_shard("model.safetensors", 0, count);
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total_bytes = 0;
  for (size_t shard = 0; shard < size_t(shards); ++shard) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", shard + 1, shards);
    const SafetensorsWriter writer =
        write_shard(file, count * shard / size_t(shards), count * (shard + 1) / size_t(shards));
    for (const std::string& name : writer.names()) weight_map[name] = file;
    total_bytes += writer.data_bytes();
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace dsv4
