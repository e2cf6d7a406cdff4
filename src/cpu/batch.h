// The tokens of one forward call: chunks of several sequences laid end to end.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/sequence_state.h"

namespace dsv4::cpu {

struct TokenBatch {
  struct Span {
    SequenceState* state;
    int64_t begin, end;  // token range of this sequence's chunk; positions ascend by one
  };
  int64_t tokens = 0;
  std::vector<int32_t> ids;
  std::vector<int64_t> positions;
  std::vector<Span> sequences;
};

}  // namespace dsv4::cpu
