#include "model/config.h"

#include "core/error.h"

namespace dsv4 {

Numerics parse_numerics(const std::string& name) {
  if (name == "official") return Numerics::kOfficial;
  if (name == "fp32") return Numerics::kFp32;
  fail("--numerics: unknown mode '{}' (expected official or fp32)", name);
}

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSlidingWindow: return "sliding_window";
    case AttentionKind::kCompressedSparse: return "csa";
    case AttentionKind::kHeavilyCompressed: return "hca";
  }
  return "?";
}

}  // namespace dsv4
