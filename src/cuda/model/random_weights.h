// Random DeviceWeights of any config generated on the GPU, for benchmarking real DeepSeek-V4
// shapes (a Flash layer is ~3.5 GB) without a checkpoint and without host copies. Shapes, roles
// and formats come from the tensor schema (empty_weights / visit_tensors), so every tensor is
// exactly what a checkpoint would hold: FP8 linears (e4m3 + fp32 128x128 scales), MXFP4 routed
// experts (packed per layer as upload_weights packs them), bf16 plain linears and embedding, fp32
// norms and parameters, int32 hash-routing tables of distinct experts. Values are scaled as in
// synthetic_weights (unit-gain linears, norms ~1), so activations stay finite through the layers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/model/device_weights.h"
#include "model/config.h"

namespace dsv4::cuda {

// Device bytes random_device_weights(config, ...) allocates (MTP blocks are never built).
size_t random_device_weights_bytes(const ModelConfig& config);

// Fails (dsv4::Error naming needed and free bytes) when the weights do not fit in free device
// memory; prints one progress line per layer to stderr. Synchronous. The same seed gives the
// same bits.
DeviceWeights random_device_weights(const ModelConfig& config, uint64_t seed);

}  // namespace dsv4::cuda
