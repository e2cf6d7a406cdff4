// The integer type of vocabulary ids throughout the tokenizer and its users.
#pragma once

#include <cstdint>

namespace dsv4 {

using TokenId = int32_t;

}  // namespace dsv4
