#include "tokenizer/chat_message.h"

#include "core/error.h"
#include "tokenizer/python_json.h"

namespace dsv4 {

namespace {

ChatRole parse_role(const std::string& role) {
  if (role == "system") return ChatRole::system;
  if (role == "developer") return ChatRole::developer;
  if (role == "user") return ChatRole::user;
  if (role == "assistant") return ChatRole::assistant;
  if (role == "tool") return ChatRole::tool;
  if (role == "latest_reminder") return ChatRole::latest_reminder;
  fail("chat message: unknown role {:?}", role);
}

// Content is a string, null, or a list of parts. DeepSeek's encoding joins the text parts of a
// tool result with blank lines and names the parts it cannot show.
std::string content_text(const nlohmann::ordered_json& content) {
  if (content.is_null()) return {};
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) fail("chat message: \"content\" is neither text nor a list of parts");
  std::string text;
  for (const auto& part : content) {
    if (!text.empty()) text += "\n\n";
    const std::string type = part.value("type", "");
    text += type == "text" ? part.value("text", "") : "[Unsupported " + type + "]";
  }
  return text;
}

ToolCall tool_call_from_json(const nlohmann::ordered_json& call) {
  if (!call.contains("function")) fail("chat message: a tool call has no \"function\"");
  const auto& function = call.at("function");
  ToolCall result;
  result.id = call.value("id", "");
  result.name = function.value("name", "");
  if (result.name.empty()) fail("chat message: a tool call has no function name");
  const auto& arguments = function.value("arguments", nlohmann::ordered_json("{}"));
  result.arguments =
      arguments.is_string() ? arguments.get<std::string>() : python_json_dumps(arguments);
  return result;
}

}  // namespace

ChatMessage chat_message_from_json(const nlohmann::ordered_json& message) {
  if (!message.is_object()) fail("chat message: {} is not an object", message.dump());
  if (!message.contains("role")) fail("chat message: {} has no \"role\"", message.dump());
  ChatMessage result;
  try {
    result.role = parse_role(message.at("role").get<std::string>());
    result.content = content_text(message.value("content", nlohmann::ordered_json()));
    if (message.contains("reasoning_content") && !message["reasoning_content"].is_null()) {
      result.reasoning_content = message["reasoning_content"].get<std::string>();
    }
    if (message.contains("tool_calls") && !message["tool_calls"].is_null()) {
      for (const auto& call : message["tool_calls"]) {
        result.tool_calls.push_back(tool_call_from_json(call));
      }
    }
    result.tool_call_id = message.value("tool_call_id", "");
    result.tools = message.value("tools", nlohmann::ordered_json());
    result.response_format = message.value("response_format", nlohmann::ordered_json());
    if (message.contains("task") && !message["task"].is_null()) {
      result.task = message["task"].get<std::string>();
    }
    result.without_eos = message.value("wo_eos", false);
  } catch (const nlohmann::ordered_json::exception& error) {
    fail("chat message {}: {}", message.dump(), error.what());
  }
  return result;
}

std::vector<ChatMessage> chat_messages_from_json(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) fail("chat messages: expected a JSON array");
  std::vector<ChatMessage> result;
  for (const auto& message : messages) result.push_back(chat_message_from_json(message));
  return result;
}

}  // namespace dsv4
