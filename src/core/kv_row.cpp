#include "core/kv_row.h"

#include <cstring>
#include <vector>

#include "core/formats.h"
#include "core/quantize.h"

namespace dsv4 {

size_t KvRowFormat::scale_count() const {
  return nope_dim() / kFp8KvBlock;
}

size_t KvRowFormat::bytes() const {
  const size_t raw = nope_dim() + 2 * rope_dim + scale_count();
  return (raw + 7) / 8 * 8;
}

void KvRowFormat::encode(const float* row, uint8_t* out) const {
  const size_t nope = nope_dim();
  std::vector<float> scales(scale_count());
  quantize_fp8(row, nope, kFp8KvBlock, out, scales.data());
  uint8_t* rope_out = out + nope;
  for (size_t i = 0; i < rope_dim; ++i) {
    const uint16_t bits = float_to_bf16(row[nope + i]);
    std::memcpy(rope_out + 2 * i, &bits, 2);
  }
  uint8_t* scale_out = rope_out + 2 * rope_dim;
  for (size_t b = 0; b < scales.size(); ++b) scale_out[b] = power_of_two_to_ue8m0(scales[b]);
  std::memset(scale_out + scales.size(), 0, bytes() - (nope + 2 * rope_dim + scales.size()));
}

void KvRowFormat::decode(const uint8_t* in, float* row) const {
  const size_t nope = nope_dim();
  const uint8_t* scale_in = in + nope + 2 * rope_dim;
  for (size_t i = 0; i < nope; ++i) {
    row[i] = e4m3_to_float(in[i]) * ue8m0_to_float(scale_in[i / kFp8KvBlock]);
  }
  for (size_t i = 0; i < rope_dim; ++i) {
    uint16_t bits;
    std::memcpy(&bits, in + nope + 2 * i, 2);
    row[nope + i] = bf16_to_float(bits);
  }
}

size_t IndexKeyFormat::bytes() const {
  return dim / 2 + dim / kFp4Block;
}

void IndexKeyFormat::encode(const float* key, uint8_t* out) const {
  quantize_fp4(key, dim, out, out + dim / 2);
}

void IndexKeyFormat::decode(const uint8_t* in, float* key) const {
  const uint8_t* scales = in + dim / 2;
  for (size_t i = 0; i < dim; ++i) {
    const uint8_t byte = in[i / 2];
    const uint8_t code = (i % 2 == 0) ? packed_e2m1_low(byte) : packed_e2m1_high(byte);
    key[i] = e2m1_to_float(code) * ue8m0_to_float(scales[i / kFp4Block]);
  }
}

}  // namespace dsv4
