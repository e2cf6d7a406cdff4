// A probe kernel for wgmma_fragment_test.cpp: one m64n8k32 e4m3 warpgroup MMA with A from
// registers (wgmma_m64n8k32_e4m3_rs), on sm_90a.
#pragma once

#include <cstdint>

namespace dsv4::cuda {

constexpr int kFragmentRows = 64, kFragmentTokens = 8, kFragmentInputs = 32;

// a [64][32] and b [8][32] e4m3 codes, row-major, on the device; d [64][8] = a · bᵀ. Synchronous.
void multiply_m64n8k32_e4m3(const uint8_t* a, const uint8_t* b, float* d);

}  // namespace dsv4::cuda
