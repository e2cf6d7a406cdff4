// Reads DeepSeek-V4's generated text back into an assistant message, as encoding_dsv4.py's
// parse_message_from_completion_text does: the reasoning before </think> (thinking mode), the
// content, and the DSML tool calls, e.g.
//   "Let me look.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
//   "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
//   "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"
//   -> reasoning "Let me look.", content "", get_weather({"city": "Paris"}).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_message.h"

namespace dsv4 {

struct ParsedCompletion {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCall> tool_calls;  // arguments as a JSON object text; ids left empty
  // The text ended with EOS (or, with tool calls, with the closed DSML block); false when it
  // stopped early, which only ParseOptions::allow_truncated accepts.
  bool complete = true;
};

struct ParseOptions {
  // Accept text that stops before its end (no EOS, e.g. at a token limit, or because the
  // engine did not keep the stop token): unclosed reasoning is all reasoning, and an unclosed
  // tool-call block keeps the calls completed before the cut. Malformed DSML still fails.
  bool allow_truncated = false;
};

// Fails with a message saying what is malformed: a missing </think> or EOS, DSML that does not
// follow the format, a repeated parameter, text after the tool calls, or a special token
// inside the content or reasoning.
ParsedCompletion parse_completion(std::string_view text, ThinkingMode mode,
                                  const ParseOptions& options = {});

}  // namespace dsv4
