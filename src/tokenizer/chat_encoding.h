// DeepSeek-V4's prompt format: messages -> the text the model continues, as DeepSeek's
// encoding_dsv4.py renders it. For example, in chat mode
//   [system "S", user "Hi"]  ->  "<｜begin▁of▁sentence｜>S<｜User｜>Hi<｜Assistant｜></think>"
// and in thinking mode the prompt ends with "<think>" instead. Earlier assistant turns end with
// EOS; their reasoning is dropped unless tools are defined. Tool results (role tool) join the
// following user turn as <tool_result> blocks; tool calls are written in DSML.
#pragma once

#include <span>
#include <string>

#include "tokenizer/chat_message.h"

namespace dsv4 {

// Extra instructions at the start of a thinking-mode prompt: only `max` adds any.
enum class ReasoningEffort { standard, high, max };

struct ChatEncodeOptions {
  ThinkingMode mode = ThinkingMode::chat;
  // Leave out the reasoning of assistant turns before the last user message (the model only
  // ever saw its current turn's thinking). Ignored when some message defines tools.
  bool drop_thinking = true;
  // BOS at the start, unless a context is given (it already began the sequence).
  bool add_bos = true;
  ReasoningEffort reasoning_effort = ReasoningEffort::standard;
};

// The prompt for `messages`. With `context` (earlier messages whose prompt was already
// encoded, e.g. in a KV cache), only the text that follows it is returned. Fails naming the
// message on input the format cannot express (a developer message without content, an unknown
// task, tool-call arguments that are JSON but not an object).
std::string encode_chat(std::span<const ChatMessage> messages,
                        const ChatEncodeOptions& options = {},
                        std::span<const ChatMessage> context = {});

}  // namespace dsv4
