// The messages of a DeepSeek-V4 conversation, as chat_encoding.h renders them into a prompt
// and chat_parsing.h reads them back from generated text. They follow the OpenAI chat format
// (roles, tool calls with JSON arguments, tool results by call id) plus DeepSeek's extensions
// (reasoning content, developer and latest_reminder roles, quick-instruction tasks).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv4 {

enum class ChatRole { system, developer, user, assistant, tool, latest_reminder };

// "chat" answers right after </think>; "thinking" reasons inside <think>...</think> first.
enum class ThinkingMode { chat, thinking };

struct ToolCall {
  std::string id;  // OpenAI's call id; tool results name it (may be empty)
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ChatMessage {
  ChatRole role = ChatRole::user;
  std::string content;
  std::string reasoning_content;     // assistant: the thinking that preceded `content`
  std::vector<ToolCall> tool_calls;  // assistant
  std::string tool_call_id;          // tool: the call this is the result of
  // system or developer: OpenAI tool definitions ([{"type": "function", "function": {...}}])
  // and a response_format schema; null when absent. Ordered, since the prompt shows them as
  // written.
  nlohmann::ordered_json tools;
  nlohmann::ordered_json response_format;
  // A quick-instruction task ("action", "query", "authority", "domain", "title", "read_url")
  // that ends this message with its task token instead of the assistant prompt.
  std::optional<std::string> task;
  bool without_eos = false;  // assistant: leave the turn open (no EOS), e.g. to continue it
};

// One message from OpenAI chat JSON: "role", "content" (string, null, or a list of
// {"type": "text", "text": ...} parts), "reasoning_content", "tool_calls" (arguments as a JSON
// string or object), "tool_call_id", and DeepSeek's "tools", "response_format", "task",
// "wo_eos". Fails naming the offending field.
ChatMessage chat_message_from_json(const nlohmann::ordered_json& message);
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::ordered_json& messages);

}  // namespace dsv4
