// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it, which is how
// DeepSeek's chat encoding embeds tool schemas and arguments in prompts: ", " and ": "
// separators, object keys in their original order, floats as Python's repr.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dsv4 {

std::string python_json_dumps(const nlohmann::ordered_json& value);

}  // namespace dsv4
