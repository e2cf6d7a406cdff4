#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/formats.h"
#include "core/kv_row.h"
#include "core/quantize.h"

namespace dsv4 {
namespace {

std::vector<float> bf16_ramp(size_t n, float step) {
  std::vector<float> row(n);
  for (size_t i = 0; i < n; ++i) row[i] = round_bf16(step * float(int(i % 37) - 18));
  return row;
}

TEST(KvRowFormat, FlashRowIs584Bytes) {
  EXPECT_EQ((KvRowFormat{512, 64}.bytes()), 584u);  // 448 e4m3 + 128 rope bytes + 7 scales
  EXPECT_EQ((KvRowFormat{512, 64}.scale_count()), 7u);
}

TEST(KvRowFormat, DecodeGivesTheFp8RoundTripOfNopeAndKeepsRopeBits) {
  const KvRowFormat format{512, 64};
  const std::vector<float> row = bf16_ramp(512, 0.37f);
  std::vector<uint8_t> bytes(format.bytes());
  format.encode(row.data(), bytes.data());
  std::vector<float> decoded(512);
  format.decode(bytes.data(), decoded.data());
  std::vector<float> expected = row;
  fp8_round_trip(expected.data(), 448, 64);
  for (size_t i = 0; i < 512; ++i) EXPECT_EQ(decoded[i], expected[i]) << "dim " << i;
}

TEST(KvRowFormat, LayoutIsNopeCodesThenRopeBf16ThenScales) {
  // First nope block: amax 448 -> scale 1 (ue8m0 127), value 448 -> code 0x7e.
  const KvRowFormat format{128, 64};
  std::vector<float> row(128, 0.0f);
  row[0] = 448.0f;
  row[64] = 1.5f;  // first rope dim
  std::vector<uint8_t> bytes(format.bytes());
  format.encode(row.data(), bytes.data());
  EXPECT_EQ(bytes[0], 0x7e);
  uint16_t rope_bits;
  std::memcpy(&rope_bits, bytes.data() + 64, 2);
  EXPECT_EQ(rope_bits, 0x3fc0);  // bf16 of 1.5
  EXPECT_EQ(bytes[64 + 128], 127);
}

TEST(IndexKeyFormat, Dim128Is68BytesAndDecodesToTheFp4RoundTrip) {
  const IndexKeyFormat format{128};
  EXPECT_EQ(format.bytes(), 68u);
  const std::vector<float> key = bf16_ramp(128, 0.11f);
  std::vector<uint8_t> bytes(format.bytes());
  format.encode(key.data(), bytes.data());
  std::vector<float> decoded(128);
  format.decode(bytes.data(), decoded.data());
  std::vector<float> expected = key;
  fp4_round_trip(expected.data(), 128);
  for (size_t i = 0; i < 128; ++i) EXPECT_EQ(decoded[i], expected[i]) << "dim " << i;
}

}  // namespace
}  // namespace dsv4
