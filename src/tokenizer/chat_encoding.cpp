#include "tokenizer/chat_encoding.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/chat_tokens.h"
#include "tokenizer/python_json.h"

namespace dsv4 {

namespace {

using namespace chat_tokens;

constexpr std::string_view kReasoningEffortMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n";

// The tools section of a system or developer message, around the one-line JSON schemas.
constexpr std::string_view kToolsBeforeSchemas =
    "## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke "
    "tools by writing a \"<｜DSML｜tool_calls>\" block like the following:\n\n"
    "<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE"
    "</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other "
    "types (numbers, booleans, arrays, objects), pass the value in JSON format and set "
    "`string=\"false\"`.\n\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete "
    "reasoning inside <think>...</think> BEFORE any tool calls or final response.\n\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n";
constexpr std::string_view kToolsAfterSchemas =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke "
    "tool calls.\n";

constexpr std::string_view kResponseFormatIntro =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

const std::unordered_map<std::string, std::string_view>& task_tokens() {
  static const std::unordered_map<std::string, std::string_view> tokens = {
      {"action", "<｜action｜>"}, {"query", "<｜query｜>"}, {"authority", "<｜authority｜>"},
      {"domain", "<｜domain｜>"}, {"title", "<｜title｜>"}, {"read_url", "<｜read_url｜>"}};
  return tokens;
}

// Python truthiness, which the reference applies to optional fields ("if tools:").
bool is_set(const nlohmann::ordered_json& value) {
  if (value.is_null()) return false;
  if (value.is_array() || value.is_object() || value.is_string()) return !value.empty();
  if (value.is_boolean()) return value.get<bool>();
  return value != 0;
}

struct ContentBlock {
  bool is_tool_result = false;
  std::string text;
  std::string tool_use_id;
};

// A message as rendered: V4 has no tool role, so tool results become blocks of a user turn
// (and consecutive user messages share one turn).
struct Turn {
  ChatMessage message;
  bool has_blocks = false;
  std::vector<ContentBlock> blocks;
};

std::vector<Turn> merge_tool_messages(std::span<const ChatMessage> messages) {
  std::vector<Turn> turns;
  for (const ChatMessage& message : messages) {
    const bool after_user_turn =
        !turns.empty() && turns.back().message.role == ChatRole::user && turns.back().has_blocks;
    if (message.role == ChatRole::tool) {
      ContentBlock block{true, message.content, message.tool_call_id};
      if (after_user_turn) {
        turns.back().blocks.push_back(std::move(block));
      } else {
        Turn turn;
        turn.message.role = ChatRole::user;
        turn.has_blocks = true;
        turn.blocks.push_back(std::move(block));
        turns.push_back(std::move(turn));
      }
    } else if (message.role == ChatRole::user) {
      ContentBlock block{false, message.content, {}};
      if (after_user_turn && !turns.back().message.task) {
        turns.back().blocks.push_back(std::move(block));
      } else {
        Turn turn;
        turn.message.role = ChatRole::user;
        turn.message.content = message.content;
        turn.message.task = message.task;
        turn.message.without_eos = message.without_eos;
        turn.has_blocks = true;
        turn.blocks.push_back(std::move(block));
        turns.push_back(std::move(turn));
      }
    } else {
      turns.push_back(Turn{message, false, {}});
    }
  }
  return turns;
}

using CallOrder = std::unordered_map<std::string, size_t>;

// Puts the tool results of each user turn in the order of the latest assistant's calls; the
// order in force at the end is returned so that a continuation can carry it on.
CallOrder sort_tool_results(std::vector<Turn>& turns, CallOrder order) {
  for (Turn& turn : turns) {
    if (turn.message.role == ChatRole::assistant && !turn.message.tool_calls.empty()) {
      order.clear();
      for (size_t i = 0; i < turn.message.tool_calls.size(); ++i) {
        const std::string& id = turn.message.tool_calls[i].id;
        if (!id.empty()) order[id] = i;
      }
    } else if (turn.message.role == ChatRole::user && !turn.blocks.empty()) {
      std::vector<ContentBlock> results;
      for (const ContentBlock& block : turn.blocks) {
        if (block.is_tool_result) results.push_back(block);
      }
      if (results.size() < 2 || order.empty()) continue;
      const auto rank = [&](const ContentBlock& block) {
        const auto it = order.find(block.tool_use_id);
        return it == order.end() ? size_t{0} : it->second;
      };
      std::stable_sort(results.begin(), results.end(),
                       [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
      size_t next = 0;
      for (ContentBlock& block : turn.blocks) {
        if (block.is_tool_result) block = results[next++];
      }
    }
  }
  return order;
}

long last_user_index(const std::vector<Turn>& turns) {
  for (size_t i = turns.size(); i-- > 0;) {
    const ChatRole role = turns[i].message.role;
    if (role == ChatRole::user || role == ChatRole::developer) return static_cast<long>(i);
  }
  return -1;
}

// Before the last user message, assistant turns lose their reasoning and developer messages
// go entirely.
std::vector<Turn> drop_thinking(const std::vector<Turn>& turns) {
  const long last_user = last_user_index(turns);
  std::vector<Turn> kept;
  for (size_t i = 0; i < turns.size(); ++i) {
    const ChatRole role = turns[i].message.role;
    if (role != ChatRole::assistant && role != ChatRole::developer) {
      kept.push_back(turns[i]);
    } else if (static_cast<long>(i) >= last_user) {
      kept.push_back(turns[i]);
    } else if (role == ChatRole::assistant) {
      kept.push_back(turns[i]);
      kept.back().message.reasoning_content.clear();
    }
  }
  return kept;
}

std::string render_tools(const nlohmann::ordered_json& tools) {
  std::string schemas;
  for (const auto& tool : tools) {
    if (!tool.contains("function")) fail("tool definition {} has no \"function\"", tool.dump());
    if (!schemas.empty()) schemas += '\n';
    schemas += python_json_dumps(tool.at("function"));
  }
  return std::string(kToolsBeforeSchemas) + schemas + std::string(kToolsAfterSchemas);
}

// One DSML parameter line per argument: strings verbatim, anything else as JSON. Arguments that
// are not JSON at all travel as one string parameter named "arguments".
std::string render_arguments(const ToolCall& call) {
  nlohmann::ordered_json arguments = nlohmann::ordered_json::parse(call.arguments, nullptr, false);
  if (arguments.is_discarded()) arguments = {{"arguments", call.arguments}};
  if (!arguments.is_object()) {
    fail("tool call {:?}: arguments {:?} are not a JSON object", call.name, call.arguments);
  }
  std::string lines;
  for (const auto& [key, value] : arguments.items()) {
    if (!lines.empty()) lines += '\n';
    const bool is_string = value.is_string();
    lines += fmt::format("<{}parameter name=\"{}\" string=\"{}\">{}</{}parameter>", kDsml, key,
                         is_string ? "true" : "false",
                         is_string ? value.get<std::string>() : python_json_dumps(value), kDsml);
  }
  return lines;
}

std::string render_tool_calls(const std::vector<ToolCall>& calls) {
  std::string invokes;
  for (const ToolCall& call : calls) {
    if (!invokes.empty()) invokes += '\n';
    invokes += fmt::format("<{}invoke name=\"{}\">\n{}\n</{}invoke>", kDsml, call.name,
                           render_arguments(call), kDsml);
  }
  return fmt::format("\n\n{}\n{}\n{}", kToolCallsStart, invokes, kToolCallsEnd);
}

std::string render_instructions(const ChatMessage& message) {
  std::string text;
  if (is_set(message.tools)) text += "\n\n" + render_tools(message.tools);
  if (is_set(message.response_format)) {
    text += "\n\n" + std::string(kResponseFormatIntro) + python_json_dumps(message.response_format);
  }
  return text;
}

std::string render_user_turn(const Turn& turn) {
  std::string text(kUser);
  if (turn.blocks.empty()) return text + turn.message.content;
  for (size_t i = 0; i < turn.blocks.size(); ++i) {
    if (i > 0) text += "\n\n";
    const ContentBlock& block = turn.blocks[i];
    text += block.is_tool_result ? "<tool_result>" + block.text + "</tool_result>" : block.text;
  }
  return text;
}

std::string render_turn(size_t index, const std::vector<Turn>& turns,
                        const ChatEncodeOptions& options, bool drop) {
  const ChatMessage& message = turns[index].message;
  const bool thinking = options.mode == ThinkingMode::thinking;
  const long last_user = last_user_index(turns);
  const long position = static_cast<long>(index);
  std::string text;
  if (index == 0 && thinking && options.reasoning_effort == ReasoningEffort::max) {
    text += kReasoningEffortMax;
  }
  switch (message.role) {
    case ChatRole::system:
      text += message.content + render_instructions(message);
      break;
    case ChatRole::developer:
      if (message.content.empty()) fail("a developer message needs content");
      text += std::string(kUser) + message.content + render_instructions(message);
      break;
    case ChatRole::user:
      text += render_user_turn(turns[index]);
      break;
    case ChatRole::latest_reminder:
      text += std::string(kLatestReminder) + message.content;
      break;
    case ChatRole::tool:
      // merge_tool_messages turned every tool message into a user turn.
      fail("internal error: unmerged tool message");
    case ChatRole::assistant: {
      // A turn that answers a task carries no thinking block.
      const bool after_task = index > 0 && turns[index - 1].message.task.has_value();
      if (thinking && !after_task && (!drop || position > last_user)) {
        text += message.reasoning_content + std::string(kThinkEnd);
      }
      text += message.content;
      if (!message.tool_calls.empty()) text += render_tool_calls(message.tool_calls);
      if (!message.without_eos) text += kEos;
      break;
    }
  }

  // What the model is prompted with next: nothing when another non-assistant message follows.
  if (index + 1 < turns.size()) {
    const ChatRole next = turns[index + 1].message.role;
    if (next != ChatRole::assistant && next != ChatRole::latest_reminder) return text;
  }
  if (message.task) {
    const auto it = task_tokens().find(*message.task);
    if (it == task_tokens().end()) fail("unknown chat task {:?}", *message.task);
    if (*message.task == "action") {
      text += std::string(kAssistant) + std::string(thinking ? kThinkStart : kThinkEnd);
    }
    text += it->second;
  } else if (message.role == ChatRole::user || message.role == ChatRole::developer) {
    text += kAssistant;
    const bool opens_thinking = thinking && (!drop || position >= last_user);
    text += opens_thinking ? kThinkStart : kThinkEnd;
  }
  return text;
}

}  // namespace

std::string encode_chat(std::span<const ChatMessage> messages, const ChatEncodeOptions& options,
                        std::span<const ChatMessage> context) {
  std::vector<Turn> context_turns = merge_tool_messages(context);
  std::vector<Turn> new_turns = merge_tool_messages(messages);
  sort_tool_results(new_turns, sort_tool_results(context_turns, {}));

  std::vector<Turn> turns = context_turns;
  turns.insert(turns.end(), new_turns.begin(), new_turns.end());
  std::string prompt = options.add_bos && context_turns.empty() ? std::string(kBos) : "";

  const bool any_tools = std::any_of(turns.begin(), turns.end(),
                                     [](const Turn& turn) { return is_set(turn.message.tools); });
  const bool drop = options.drop_thinking && !any_tools;
  size_t first = context_turns.size();
  if (options.mode == ThinkingMode::thinking && drop) {
    turns = drop_thinking(turns);
    first = drop_thinking(context_turns).size();
  }
  for (size_t i = first; i < turns.size(); ++i) prompt += render_turn(i, turns, options, drop);
  return prompt;
}

}  // namespace dsv4
