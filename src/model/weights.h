// The model's weights in memory, in one representation every backend can read: values are
// decoded to float exactly (e4m3 / e2m1 codes become their unscaled values, bf16 widened) and
// block scales are kept beside them, so `official` numerics can apply them per block and
// `fp32` numerics get the exact dequantized product.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv4 {

enum class WeightFormat {
  kF32,    // plain values, no scales
  kBF16,   // plain values (bf16-exact), no scales
  kFp8,    // e4m3 values, one ue8m0/fp32 scale per 128x128 block
  kFp4,    // e2m1 values (MXFP4), one ue8m0 scale per row per 32 inputs
  kNvFp4,  // e2m1 values (NVFP4), one e4m3 scale per row per 16 inputs, times global_scale
};
const char* weight_format_name(WeightFormat format);
// FP8, FP4 and NVFP4: block-scaled codes, whose official GEMM quantizes the activations to FP8.
inline bool block_scaled(WeightFormat format) {
  return format == WeightFormat::kFp8 || format == WeightFormat::kFp4 ||
         format == WeightFormat::kNvFp4;
}

struct LinearWeight {
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  WeightFormat format = WeightFormat::kF32;
  std::vector<float> values;  // [rows, cols], unscaled
  std::vector<float> scales;  // kFp8: [ceil(rows/128), ceil(cols/128)]; kFp4: [rows, cols/32];
                              // kNvFp4: [rows, cols/16]
  float global_scale = 1.0f;  // kNvFp4: the per-tensor fp32 scale; 1 otherwise

  int64_t scale_block_rows() const { return format == WeightFormat::kFp8 ? 128 : 1; }
  int64_t scale_block_cols() const {
    switch (format) {
      case WeightFormat::kFp8:
        return 128;
      case WeightFormat::kFp4:
        return 32;
      case WeightFormat::kNvFp4:
        return 16;
      default:
        return cols;
    }
  }
  int64_t scale_cols() const { return (cols + scale_block_cols() - 1) / scale_block_cols(); }
  // Scale applying to element (row, col); 1 for unscaled formats.
  float scale_at(int64_t row, int64_t col) const {
    if (scales.empty()) return 1.0f;
    return scales[size_t((row / scale_block_rows()) * scale_cols() + col / scale_block_cols())];
  }
  // The exact dequantized value (NVFP4: code · block scale, exact, then · global scale).
  float dequantized(int64_t row, int64_t col) const {
    return values[size_t(row * cols + col)] * scale_at(row, col) * global_scale;
  }
};

struct CompressorWeights {
  LinearWeight wkv;         // [coff*d, dim], fp32 math
  LinearWeight wgate;       // [coff*d, dim], fp32 math
  std::vector<float> ape;   // [ratio, coff*d] position bias added to the gate
  std::vector<float> norm;  // [d] RMSNorm weight
};

struct IndexerWeights {
  LinearWeight wq_b;             // [index_n_heads*index_head_dim, q_lora_rank], FP8
  LinearWeight weights_proj;     // [index_n_heads, dim], bf16
  CompressorWeights compressor;  // overlapping, at index_head_dim
};

struct AttentionWeights {
  LinearWeight wq_a;                            // [q_lora_rank, dim]
  std::vector<float> q_norm;                    // [q_lora_rank]
  LinearWeight wq_b;                            // [n_heads*head_dim, q_lora_rank]
  LinearWeight wkv;                             // [head_dim, dim]
  std::vector<float> kv_norm;                   // [head_dim]
  LinearWeight wo_a;                            // [o_groups*o_lora_rank, n_heads*head_dim/o_groups]
  LinearWeight wo_b;                            // [dim, o_groups*o_lora_rank]
  std::vector<float> attn_sink;                 // [n_heads]
  std::optional<CompressorWeights> compressor;  // CSA and HCA layers
  std::optional<IndexerWeights> indexer;        // CSA layers
};

struct ExpertWeights {
  LinearWeight w1;  // gate [inter, dim]
  LinearWeight w2;  // down [dim, inter]
  LinearWeight w3;  // up   [inter, dim]
};

struct MoeWeights {
  LinearWeight gate;             // [n_routed_experts, dim], fp32 math
  std::vector<float> gate_bias;  // [n_routed_experts]; score-routed layers only
  std::vector<int32_t> tid2eid;  // [vocab, n_activated]; hash-routed layers only
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;
};

struct HyperConnectionWeights {
  std::vector<float> fn;     // [mix, hc_mult*dim]
  std::vector<float> base;   // [mix]
  std::vector<float> scale;  // [3] for block sites, [1] for the head
};

struct BlockWeights {
  std::vector<float> attn_norm;  // [dim]
  std::vector<float> ffn_norm;   // [dim]
  HyperConnectionWeights hc_attn;
  HyperConnectionWeights hc_ffn;
  AttentionWeights attn;
  MoeWeights ffn;
};

struct MtpWeights {
  BlockWeights block;
  LinearWeight e_proj, h_proj;  // [dim, dim], FP8
  std::vector<float> enorm, hnorm, norm;
  HyperConnectionWeights hc_head;
};

struct ModelWeights {
  LinearWeight embed;  // [vocab, dim]
  std::vector<BlockWeights> blocks;
  std::vector<float> norm;  // [dim]
  LinearWeight head;        // [vocab, dim], fp32 math
  HyperConnectionWeights hc_head;
  std::vector<MtpWeights> mtp;  // empty when the checkpoint has none
};

}  // namespace dsv4
