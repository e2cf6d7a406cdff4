// The special strings of DeepSeek-V4's chat format (encoding/encoding_dsv4.py in the model
// repository). V4's tokenizer has a token for each; older ones encode them as plain text.
#pragma once

#include <string_view>

namespace dsv4::chat_tokens {

inline constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kUser = "<｜User｜>";
inline constexpr std::string_view kAssistant = "<｜Assistant｜>";
inline constexpr std::string_view kLatestReminder = "<｜latest_reminder｜>";
inline constexpr std::string_view kThinkStart = "<think>";
inline constexpr std::string_view kThinkEnd = "</think>";
// Tool calls are written in DSML, XML-like tags whose names start with this marker.
inline constexpr std::string_view kDsml = "｜DSML｜";
inline constexpr std::string_view kToolCallsStart = "<｜DSML｜tool_calls>";
inline constexpr std::string_view kToolCallsEnd = "</｜DSML｜tool_calls>";
inline constexpr std::string_view kInvokeStart = "<｜DSML｜invoke";
inline constexpr std::string_view kInvokeEnd = "</｜DSML｜invoke";
inline constexpr std::string_view kParameterStart = "<｜DSML｜parameter";

}  // namespace dsv4::chat_tokens
