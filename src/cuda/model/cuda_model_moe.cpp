// The MoE sublayer of the CUDA forward pass (CudaModel::moe): router, grouping, the routed
// experts' GEMMs and SwiGLU, the shared expert on the side lane, the combine.
#include "cuda/kernels/gemm/fp8_quantize.h"
#include "cuda/kernels/gemm/scaled_gemm.h"
#include "cuda/kernels/moe/combine.h"
#include "cuda/kernels/moe/grouping.h"
#include "cuda/kernels/moe/router.h"
#include "cuda/kernels/moe/swiglu.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/cuda_model_state.h"

namespace dsv4::cuda {

// src/cpu/moe.cpp, sized on the device: the routed experts' GEMMs read the expert offsets
// from moe_group in the kernel, so the step never waits for the host.
void CudaModel::moe(int64_t layer, int32_t T) {
  State& s = *s_;
  const ModelConfig& c = config_;
  const DeviceMoe& m = s.w.blocks[size_t(layer)].ffn;
  const bool hash = c.layers[size_t(layer)].hash_routing;
  const int64_t D = c.dim, K = c.n_activated_experts, E = c.n_routed_experts;
  const auto limit = float(c.swiglu_limit);
  cudaStream_t st = s.stream;

  // x quantized once: the routed experts read it in grouped order, the shared expert as it is.
  quantize_activations_fp8(s.normed.data(), T, D, s.x_codes.data(), s.x_scales.data(), st);

  // The shared expert, w1 and w3 in one GEMM ([g | u] per row) too. FP8 (the checkpoints'): on
  // the side lane alongside the router and the routed experts (the kernels of both are short at
  // decode and leave SMs idle), w1|w3 reading x's quantization above, w2 the fused SwiGLU's.
  const DeviceExpert& shared = m.shared;
  const int64_t shared_inter = shared.w13.rows / 2;
  const bool shared_alongside = block_scaled(shared.w13.format) && block_scaled(shared.w2.format);
  if (shared_alongside) {
    cudaStream_t ss = s.side.stream;
    State::LinearScratch& lane = s.side_lane;
    uint16_t* g = s.shared_gate_up.data();
    s.fork_side();
    scaled_gemm(s.x_codes.data(), s.x_scales.data(), T, shared.w13.view(), {nullptr, g}, ss,
                lane.split());
    swiglu_quantize_fp8(g, 2 * shared_inter, g + shared_inter, 2 * shared_inter, T, shared_inter,
                        nullptr, nullptr, limit, lane.codes.data(), lane.scales.data(), ss);
    scaled_gemm(lane.codes.data(), lane.scales.data(), T, shared.w2.view(),
                {nullptr, s.shared_out.data()}, ss, lane.split());
  }

  s.lin(s.normed.data(), T, m.gate, nullptr, s.router_logits.data());
  RouterShape shape{E, K, parse_score_func(c.score_func), float(c.route_scale)};
  moe_route(s.router_logits.data(), T, shape,
            hash || m.gate_bias.size() == 0 ? nullptr : m.gate_bias.data(),
            hash ? m.tid2eid.data() : nullptr, hash ? s.ids : nullptr, s.experts.data(),
            s.route_weights.data(), st);
  moe_group(s.experts.data(), T, K, E, s.counts.data(), s.offsets.data(), s.order.data(),
            s.position.data(), &s.expert_tiles, st);

  // w1 and w3 in one GEMM ([g | u] per row), SwiGLU with the routing weight quantized for w2,
  // then w2.
  const int64_t inter = m.w13.storage.rows / 2;
  uint8_t* codes = s.main_lane.codes.data();
  float* scales = s.main_lane.scales.data();
  moe_experts_gate_up(s.x_codes.data(), s.x_scales.data(), s.order.data(), s.offsets.data(),
                      s.expert_tiles, T, K, m.w13.view(), codes, scales, s.gate_up.data(), st);
  swiglu_quantize_fp8(s.gate_up.data(), 2 * inter, s.gate_up.data() + inter, 2 * inter, T * K,
                      inter, s.route_weights.data(), s.order.data(), limit, codes, scales, st);
  expert_scaled_gemm(codes, scales, s.offsets.data(), T, s.expert_tiles, m.w2.view(),
                     {nullptr, s.expert_out.data()}, st);

  if (shared_alongside) {
    s.join_side();
  } else {
    uint16_t* g = s.gate_up.data();
    s.lin(s.normed.data(), T, shared.w13, g, nullptr);
    swiglu(g, 2 * shared_inter, g + shared_inter, 2 * shared_inter, T, shared_inter, nullptr,
           nullptr, limit, s.h.data(), st);
    s.lin(s.h.data(), T, shared.w2, s.shared_out.data(), nullptr);
  }
  moe_combine(s.expert_out.data(), s.experts.data(), s.position.data(), s.shared_out.data(), T, K,
              D, s.sublayer.data(), st);
}

}  // namespace dsv4::cuda
