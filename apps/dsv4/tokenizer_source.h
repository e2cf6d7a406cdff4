// Which tokenizer a command uses: --tokenizer when given, else the model directory's own
// tokenizer.json, else (synthetic models) the DeepSeek tokenizer bundled with dsv4.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

Tokenizer load_tokenizer_for(const std::string& model_spec, const std::string& explicit_path);

}  // namespace dsv4::cli
