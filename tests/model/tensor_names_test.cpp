#include <gtest/gtest.h>

#include "model/tensor_names.h"

namespace dsv4 {
namespace {

struct NamePair {
  const char* official;
  const char* transformers;
};

constexpr NamePair kPairs[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"head.weight", "head.weight"},
    {"norm.weight", "model.norm.weight"},
    {"hc_head_fn", "model.hc_head.hc_fn"},
    {"hc_head_base", "model.hc_head.hc_base"},
    {"hc_head_scale", "model.hc_head.hc_scale"},
    {"layers.0.attn.kv_norm.weight", "model.layers.0.attn.norm.weight"},
    {"layers.7.attn.compressor.norm.weight", "model.layers.7.attn.compressor.norm.weight"},
    {"layers.7.attn.indexer.compressor.norm.weight",
     "model.layers.7.attn.indexer.compressor.norm.weight"},
    {"layers.3.hc_attn_fn", "model.layers.3.hc_attn_fn"},
    {"layers.3.ffn.experts.12.w1.scale", "model.layers.3.ffn.experts.12.w1.scale"},
    {"mtp.0.attn.kv_norm.weight", "model.mtp.0.attn.norm.weight"},
    {"mtp.0.hc_head_fn", "model.mtp.0.hc_head_fn"},
};

TEST(TensorNames, TransformersNamesMapToOfficialNames) {
  for (const NamePair& pair : kPairs) {
    EXPECT_EQ(official_tensor_name(pair.transformers), pair.official) << pair.transformers;
  }
}

TEST(TensorNames, OfficialNamesMapToTransformersNames) {
  for (const NamePair& pair : kPairs) {
    EXPECT_EQ(layout_tensor_name(pair.official, CheckpointLayout::kTransformers), pair.transformers)
        << pair.official;
  }
}

TEST(TensorNames, OfficialNamesAreKept) {
  for (const NamePair& pair : kPairs) {
    EXPECT_EQ(official_tensor_name(pair.official), pair.official);
    EXPECT_EQ(layout_tensor_name(pair.official, CheckpointLayout::kOfficial), pair.official);
  }
}

}  // namespace
}  // namespace dsv4
