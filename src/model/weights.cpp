#include "model/weights.h"

namespace dsv4 {

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32:
      return "f32";
    case WeightFormat::kBF16:
      return "bf16";
    case WeightFormat::kFp8:
      return "fp8-e4m3 (128x128 ue8m0 blocks)";
    case WeightFormat::kFp4:
      return "fp4-e2m1 (1x32 ue8m0 blocks)";
    case WeightFormat::kNvFp4:
      return "nvfp4-e2m1 (1x16 e4m3 blocks, fp32 global scale)";
  }
  return "?";
}

}  // namespace dsv4
