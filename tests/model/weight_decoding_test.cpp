#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "model/weight_decoding.h"
#include "model_test_support.h"

namespace dsv4 {
namespace {

using test::error_message;

// Writes what `fill` adds into one file and returns its tensors by name.
template <typename Fill>
std::map<std::string, TensorView> stored(const test::TempDir& dir, Fill fill) {
  SafetensorsWriter writer;
  fill(writer);
  writer.write(dir / "t.safetensors");
  std::map<std::string, TensorView> views;
  const SafetensorsFile file(dir / "t.safetensors");
  for (const TensorView& view : file.tensors()) {
    views[view.name] = view;
  }
  return views;
}

TEST(WeightDecoding, Fp8CodesBecomeUnscaledValuesAndScalesStayBeside) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    // 1, 2, -1, smallest subnormal 2^-9, max 448, 1.5
    w.add("w.weight", DType::kF8E4M3, {2, 3}, {0x38, 0x40, 0xb8, 0x01, 0x7e, 0x3c});
    w.add("w.scale", DType::kF8E8M0, {1, 1}, {126});  // 2^-1
  });
  ASSERT_EQ(check_stored_tensor(TensorRole::kQuantizedLinear, {2, 3}, t["w.weight"], &t["w.scale"]),
            WeightFormat::kFp8);
  LinearWeight w;
  decode_linear(t["w.weight"], &t["w.scale"], nullptr, WeightFormat::kFp8, 2, 3, w);
  EXPECT_EQ(w.values, std::vector<float>({1.0f, 2.0f, -1.0f, std::ldexp(1.0f, -9), 448.0f, 1.5f}));
  EXPECT_EQ(w.scales, std::vector<float>({0.5f}));
  EXPECT_EQ(w.format, WeightFormat::kFp8);
  EXPECT_EQ(w.dequantized(1, 1), 224.0f);
}

TEST(WeightDecoding, Fp8AcceptsFloatScales) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("w.weight", DType::kF8E4M3, {1, 2}, {0x38, 0x38});
    w.add_f32("w.scale", {1, 1}, std::vector<float>{0.75f});
  });
  LinearWeight w;
  decode_linear(
      t["w.weight"], &t["w.scale"], nullptr,
      check_stored_tensor(TensorRole::kQuantizedLinear, {1, 2}, t["w.weight"], &t["w.scale"]), 1, 2,
      w);
  EXPECT_EQ(w.dequantized(0, 1), 0.75f);
}

TEST(WeightDecoding, Fp4LowNibbleIsTheEvenElement) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    std::vector<uint8_t> packed(16, 0);
    packed[0] = 0x21;   // element 0: code 1 (0.5), element 1: code 2 (1.0)
    packed[1] = 0xf9;   // element 2: code 9 (-0.5), element 3: code 15 (-6)
    packed[15] = 0x70;  // element 30: 0, element 31: code 7 (6)
    w.add("e.weight", DType::kI8, {1, 16}, packed);
    w.add("e.scale", DType::kF8E8M0, {1, 1}, {128});  // 2
  });
  ASSERT_EQ(check_stored_tensor(TensorRole::kExpertLinear, {1, 32}, t["e.weight"], &t["e.scale"]),
            WeightFormat::kFp4);
  LinearWeight w;
  decode_linear(t["e.weight"], &t["e.scale"], nullptr, WeightFormat::kFp4, 1, 32, w);
  ASSERT_EQ(w.values.size(), 32u);
  EXPECT_EQ(w.values[0], 0.5f);
  EXPECT_EQ(w.values[1], 1.0f);
  EXPECT_EQ(w.values[2], -0.5f);
  EXPECT_EQ(w.values[3], -6.0f);
  EXPECT_EQ(w.values[30], 0.0f);
  EXPECT_EQ(w.values[31], 6.0f);
  EXPECT_EQ(w.scales, std::vector<float>({2.0f}));
  EXPECT_EQ(w.dequantized(0, 3), -12.0f);
}

// NVFP4 as ModelOpt writes it: U8 packed e2m1, e4m3 scales per 16 inputs, an fp32 global scale.
std::map<std::string, TensorView> nvfp4_expert(const test::TempDir& dir, DType global_dtype) {
  return stored(dir, [global_dtype](SafetensorsWriter& w) {
    std::vector<uint8_t> packed(16, 0);
    packed[0] = 0x21;  // element 0: code 1 (0.5), element 1: code 2 (1.0)
    packed[8] = 0x7f;  // element 16: code 15 (-6), element 17: code 7 (6)
    w.add("e.weight", DType::kU8, {1, 16}, packed);
    w.add("e.weight_scale", DType::kF8E4M3, {1, 2}, {0x38, 0x3c});  // 1.0, 1.5
    if (global_dtype == DType::kF32) {
      w.add_f32("e.weight_scale_2", {}, std::vector<float>{0.5f});
    } else {
      w.add_bf16("e.weight_scale_2", {}, std::vector<float>{0.5f});
    }
  });
}

TEST(WeightDecoding, Nvfp4HasE4m3ScalesPer16InputsAndAGlobalScale) {
  test::TempDir dir;
  auto t = nvfp4_expert(dir, DType::kF32);
  ASSERT_EQ(check_stored_tensor(TensorRole::kExpertLinear, {1, 32}, t["e.weight"],
                                &t["e.weight_scale"], &t["e.weight_scale_2"]),
            WeightFormat::kNvFp4);
  LinearWeight w;
  decode_linear(t["e.weight"], &t["e.weight_scale"], &t["e.weight_scale_2"], WeightFormat::kNvFp4,
                1, 32, w);
  EXPECT_EQ(w.values[0], 0.5f);
  EXPECT_EQ(w.values[1], 1.0f);
  EXPECT_EQ(w.values[16], -6.0f);
  EXPECT_EQ(w.values[17], 6.0f);
  EXPECT_EQ(w.scales, std::vector<float>({1.0f, 1.5f}));
  EXPECT_EQ(w.global_scale, 0.5f);
  EXPECT_EQ(w.dequantized(0, 17), 4.5f);
}

TEST(WeightDecoding, Nvfp4WithoutItsGlobalScaleIsRefused) {
  test::TempDir dir;
  auto t = nvfp4_expert(dir, DType::kF32);
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kExpertLinear, {1, 32}, t["e.weight"], &t["e.weight_scale"]);
  });
  EXPECT_NE(message.find("tensor 'e.weight' has e4m3 (NVFP4) block scales but no global scale"),
            std::string::npos)
      << message;
}

TEST(WeightDecoding, Nvfp4GlobalScaleMustBeF32) {
  test::TempDir dir;
  auto t = nvfp4_expert(dir, DType::kBF16);
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kExpertLinear, {1, 32}, t["e.weight"], &t["e.weight_scale"],
                        &t["e.weight_scale_2"]);
  });
  EXPECT_NE(message.find("tensor 'e.weight_scale_2' has dtype BF16; a NVFP4 global scale"),
            std::string::npos)
      << message;
}

TEST(WeightDecoding, Bf16IsWidenedExactly) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("n.weight", DType::kBF16, {2}, {0xc0, 0x3f, 0x80, 0xbf});  // 1.5, -1.0
  });
  std::vector<float> values;
  decode_floats(t["n.weight"], values);
  EXPECT_EQ(values, std::vector<float>({1.5f, -1.0f}));
}

TEST(WeightDecoding, PlainLinearKeepsItsFormat) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add_f32("g.weight", {2, 2}, std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f});
  });
  LinearWeight w;
  decode_linear(t["g.weight"], nullptr, nullptr,
                check_stored_tensor(TensorRole::kPlainLinear, {2, 2}, t["g.weight"], nullptr), 2, 2,
                w);
  EXPECT_EQ(w.format, WeightFormat::kF32);
  EXPECT_TRUE(w.scales.empty());
  EXPECT_EQ(w.values, std::vector<float>({0.1f, 0.2f, 0.3f, 0.4f}));
}

TEST(WeightDecoding, ExpertTableAcceptsI32AndI64) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add_i64("a", {2, 2}, std::vector<int64_t>{0, 3, 2, 1});
    w.add_i32("b", {2, 2}, std::vector<int32_t>{1, 0, 3, 2});
  });
  std::vector<int32_t> a, b;
  decode_expert_table(t["a"], 4, a);
  decode_expert_table(t["b"], 4, b);
  EXPECT_EQ(a, std::vector<int32_t>({0, 3, 2, 1}));
  EXPECT_EQ(b, std::vector<int32_t>({1, 0, 3, 2}));
}

TEST(WeightDecoding, ExpertIdOutOfRangeIsNamed) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add_i64("layers.0.ffn.gate.tid2eid", {1, 2}, std::vector<int64_t>{1, 9});
  });
  std::vector<int32_t> ids;
  const std::string message =
      error_message([&] { decode_expert_table(t["layers.0.ffn.gate.tid2eid"], 4, ids); });
  EXPECT_NE(message.find("t.safetensors: tensor 'layers.0.ffn.gate.tid2eid' entry 1 is expert 9"),
            std::string::npos)
      << message;
}

TEST(WeightChecks, DisallowedDtypeNamesFileTensorAndChoices) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("layers.0.attn_norm.weight", DType::kF16, {4}, std::vector<uint8_t>(8));
  });
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kNormWeight, {4}, t["layers.0.attn_norm.weight"], nullptr);
  });
  EXPECT_EQ(message,
            (dir / "t.safetensors").string() +
                ": tensor 'layers.0.attn_norm.weight' has dtype F16; a norm weight must be "
                "one of BF16, F32");
}

TEST(WeightChecks, WrongShapeNamesExpectedAndActual) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add_bf16("layers.1.attn.wo_a.weight", {4, 3}, std::vector<float>(12));
  });
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kOutputLora, {4, 4}, t["layers.1.attn.wo_a.weight"], nullptr);
  });
  EXPECT_NE(message.find("tensor 'layers.1.attn.wo_a.weight' has shape [4, 3], expected [4, 4]"),
            std::string::npos)
      << message;
}

TEST(WeightChecks, Fp8ScaleOfWrongShapeIsNamed) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("w.weight", DType::kF8E4M3, {200, 10}, std::vector<uint8_t>(2000));
    w.add("w.scale", DType::kF8E8M0, {1, 1}, {127});
  });
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kQuantizedLinear, {200, 10}, t["w.weight"], &t["w.scale"]);
  });
  EXPECT_NE(message.find("tensor 'w.scale' has shape [1, 1], expected [2, 1]"), std::string::npos)
      << message;
}

TEST(WeightChecks, Fp4WeightIsOnlyAllowedForRoutedExperts) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("w.weight", DType::kI8, {1, 16}, std::vector<uint8_t>(16));
    w.add("w.scale", DType::kF8E8M0, {1, 1}, {127});
  });
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kQuantizedLinear, {1, 32}, t["w.weight"], &t["w.scale"]);
  });
  EXPECT_NE(message.find("has dtype I8; a FP8 linear must be one of F8_E4M3, BF16, F32"),
            std::string::npos)
      << message;
}

TEST(WeightChecks, PackedFp4ShapeIsHalfTheInputs) {
  test::TempDir dir;
  auto t = stored(dir, [](SafetensorsWriter& w) {
    w.add("w.weight", DType::kU8, {2, 32}, std::vector<uint8_t>(64));
    w.add("w.scale", DType::kF8E8M0, {2, 1}, {127, 127});
  });
  const std::string message = error_message([&] {
    check_stored_tensor(TensorRole::kExpertLinear, {2, 32}, t["w.weight"], &t["w.scale"]);
  });
  EXPECT_NE(message.find("has shape [2, 32], expected [2, 16] (U8 packed FP4)"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace dsv4
