// DeepSeek-V4 prompts for each kind of message, as DeepSeek's encoding_dsv4.py renders them.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_encoding.h"

namespace dsv4 {
namespace {

constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";

// The tools section DeepSeek writes into a system or developer message, for the schema of
// weather_tools() below.
constexpr std::string_view kWeatherToolsSection =
    "## Tools\n\nYou have access to a set of tools to help answer the user's question. You can "
    "invoke tools by writing a \"<｜DSML｜tool_calls>\" block like the following:\n\n"
    "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"$TOOL_NAME\">\n<｜DSML｜parameter "
    "name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n...\n"
    "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"$TOOL_NAME2\">\n...\n</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n\nString parameters should be specified as is and set "
    "`string=\"true\"`. For all other types (numbers, booleans, arrays, objects), pass the "
    "value in JSON format and set `string=\"false\"`.\n\nIf thinking_mode is enabled "
    "(triggered by <think>), you MUST output your complete reasoning inside <think>...</think> "
    "BEFORE any tool calls or final response.\n\nOtherwise, output directly after </think> "
    "with tool calls or final response.\n\n### Available Tool Schemas\n\n"
    "{\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": "
    "{\"type\": \"object\", \"properties\": {\"location\": {\"type\": \"string\"}, \"days\": "
    "{\"type\": \"integer\", \"minimum\": 1}}, \"required\": [\"location\"]}}\n\n"
    "You MUST strictly follow the above defined tool name and parameter schemas to invoke tool "
    "calls.\n";

nlohmann::ordered_json weather_tools() {
  return nlohmann::ordered_json::parse(R"([{"type": "function", "function": {
      "name": "get_weather", "description": "Get the weather", "parameters": {"type": "object",
      "properties": {"location": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
      "required": ["location"]}}}])");
}

ChatMessage message(ChatRole role, std::string content, std::string reasoning = "") {
  ChatMessage m;
  m.role = role;
  m.content = std::move(content);
  m.reasoning_content = std::move(reasoning);
  return m;
}

ChatMessage tool_result(std::string call_id, std::string content) {
  ChatMessage m = message(ChatRole::tool, std::move(content));
  m.tool_call_id = std::move(call_id);
  return m;
}

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string text;
  for (const auto part : parts) text += part;
  return text;
}

const ChatEncodeOptions kChat{};
const ChatEncodeOptions kThinking{ThinkingMode::thinking};

// A user turn, the assistant's answer (with reasoning), and the next question.
std::vector<ChatMessage> two_turns() {
  return {message(ChatRole::user, "Hi"), message(ChatRole::assistant, "Hello!", "Greet back."),
          message(ChatRole::user, "How are you?")};
}

TEST(ChatEncoding, SystemAndUserInChatModeEndWithThinkEnd) {
  const std::vector messages = {message(ChatRole::system, "You are helpful."),
                                message(ChatRole::user, "Hi")};
  EXPECT_EQ(encode_chat(messages, kChat),
            cat({kBos, "You are helpful.<｜User｜>Hi<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, ThinkingModeOpensThinking) {
  const std::vector messages = {message(ChatRole::system, "You are helpful."),
                                message(ChatRole::user, "Hi")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "You are helpful.<｜User｜>Hi<｜Assistant｜><think>"}));
}

TEST(ChatEncoding, BosCanBeLeftOut) {
  ChatEncodeOptions options;
  options.add_bos = false;
  EXPECT_EQ(encode_chat(std::vector{message(ChatRole::user, "Hi")}, options),
            "<｜User｜>Hi<｜Assistant｜></think>");
}

TEST(ChatEncoding, NoMessagesIsJustBos) {
  EXPECT_EQ(encode_chat({}, kChat), kBos);
}

TEST(ChatEncoding, EarlierAssistantTurnsEndWithEosInChatMode) {
  EXPECT_EQ(encode_chat(two_turns(), kChat),
            cat({kBos, "<｜User｜>Hi<｜Assistant｜></think>Hello!", kEos,
                 "<｜User｜>How are you?<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, ThinkingModeDropsEarlierReasoning) {
  EXPECT_EQ(encode_chat(two_turns(), kThinking),
            cat({kBos, "<｜User｜>Hi<｜Assistant｜></think>Hello!", kEos,
                 "<｜User｜>How are you?<｜Assistant｜><think>"}));
}

TEST(ChatEncoding, ThinkingModeCanKeepEarlierReasoning) {
  ChatEncodeOptions options = kThinking;
  options.drop_thinking = false;
  EXPECT_EQ(encode_chat(two_turns(), options),
            cat({kBos, "<｜User｜>Hi<｜Assistant｜><think>Greet back.</think>Hello!", kEos,
                 "<｜User｜>How are you?<｜Assistant｜><think>"}));
}

TEST(ChatEncoding, FinalAssistantTurnKeepsReasoningInThinkingModeOnly) {
  const std::vector messages = {message(ChatRole::user, "Q"),
                                message(ChatRole::assistant, "A", "R")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "<｜User｜>Q<｜Assistant｜><think>R</think>A", kEos}));
  EXPECT_EQ(encode_chat(messages, kChat), cat({kBos, "<｜User｜>Q<｜Assistant｜></think>A", kEos}));
}

TEST(ChatEncoding, AssistantWithoutEosLeavesTheTurnOpen) {
  ChatMessage partial = message(ChatRole::assistant, "Partial");
  partial.without_eos = true;
  const std::vector messages = {message(ChatRole::user, "Q"), partial};
  EXPECT_EQ(encode_chat(messages, kChat), cat({kBos, "<｜User｜>Q<｜Assistant｜></think>Partial"}));
}

TEST(ChatEncoding, ToolDefinitionsCallsAndResults) {
  ChatMessage system = message(ChatRole::system, "You are a helpful assistant.");
  system.tools = weather_tools();
  ChatMessage call = message(ChatRole::assistant, "", "Need the weather.");
  call.tool_calls = {{"call_1", "get_weather", R"({"location": "Beijing", "days": 2})"}};
  const std::vector messages = {system, message(ChatRole::user, "Weather in Beijing?"), call,
                                tool_result("call_1", R"({"temperature": 22})"),
                                message(ChatRole::assistant, "It is 22°C.", "Got it.")};
  // Tools keep every turn's reasoning, so every user turn opens thinking.
  EXPECT_EQ(
      encode_chat(messages, kThinking),
      cat({kBos, "You are a helpful assistant.\n\n", kWeatherToolsSection,
           "<｜User｜>Weather in Beijing?<｜Assistant｜><think>Need the weather.</think>"
           "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
           "<｜DSML｜parameter name=\"location\" string=\"true\">Beijing</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"days\" string=\"false\">2</｜DSML｜parameter>\n"
           "</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
           kEos,
           "<｜User｜><tool_result>{\"temperature\": 22}</tool_result><｜Assistant｜><think>"
           "Got it.</think>It is 22°C.",
           kEos}));
}

TEST(ChatEncoding, ToolCallArgumentsOfEveryKind) {
  ChatMessage call = message(ChatRole::assistant, "Sure.");
  call.tool_calls = {{"a", "f",
                      R"({"city": "Paris", "days": 3, "metric": true, "tags": ["a", "b"], )"
                      R"("extra": {"x": 1.5, "y": null}, "quote": "say \"hi\""})"},
                     {"b", "g", "not json"},
                     {"c", "h", "{}"}};
  EXPECT_EQ(
      encode_chat(std::vector{message(ChatRole::user, "go"), call}, kChat),
      cat({kBos,
           "<｜User｜>go<｜Assistant｜></think>Sure.\n\n<｜DSML｜tool_calls>\n"
           "<｜DSML｜invoke name=\"f\">\n"
           "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"metric\" string=\"false\">true</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"tags\" string=\"false\">[\"a\", \"b\"]</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"extra\" string=\"false\">{\"x\": 1.5, \"y\": null}"
           "</｜DSML｜parameter>\n"
           "<｜DSML｜parameter name=\"quote\" string=\"true\">say \"hi\"</｜DSML｜parameter>\n"
           "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"g\">\n"
           "<｜DSML｜parameter name=\"arguments\" string=\"true\">not json</｜DSML｜parameter>\n"
           "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"h\">\n\n</｜DSML｜invoke>\n"
           "</｜DSML｜tool_calls>",
           kEos}));
}

TEST(ChatEncoding, ToolResultsFollowTheCallOrderAndShareTheNextUserTurn) {
  ChatMessage calls = message(ChatRole::assistant, "");
  calls.tool_calls = {{"id1", "a", "{}"}, {"id2", "b", "{}"}};
  const std::vector messages = {message(ChatRole::user, "both"), calls,
                                tool_result("id2", "result b"), tool_result("id1", "result a"),
                                message(ChatRole::user, "thanks")};
  EXPECT_EQ(encode_chat(messages, kChat),
            cat({kBos,
                 "<｜User｜>both<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>\n"
                 "<｜DSML｜invoke name=\"a\">\n\n</｜DSML｜invoke>\n"
                 "<｜DSML｜invoke name=\"b\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
                 kEos,
                 "<｜User｜><tool_result>result a</tool_result>\n\n<tool_result>result b"
                 "</tool_result>\n\nthanks<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, ConsecutiveUserMessagesShareATurn) {
  const std::vector messages = {message(ChatRole::user, "A"), message(ChatRole::user, "B")};
  EXPECT_EQ(encode_chat(messages, kChat), cat({kBos, "<｜User｜>A\n\nB<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, DeveloperMessageWithToolsAndResponseFormat) {
  ChatMessage developer = message(ChatRole::developer, "Be brief.");
  developer.tools = weather_tools();
  developer.response_format = {{"type", "json_object"}};
  const std::vector messages = {developer, message(ChatRole::user, "Hi")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "<｜User｜>Be brief.\n\n", kWeatherToolsSection,
                 "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to "
                 "reply:\n{\"type\": \"json_object\"}<｜User｜>Hi<｜Assistant｜><think>"}));
}

TEST(ChatEncoding, ThinkingModeDropsEarlierDeveloperMessages) {
  const std::vector messages = {message(ChatRole::developer, "Dev"),
                                message(ChatRole::assistant, "ok", "r"),
                                message(ChatRole::user, "Hi")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "ok", kEos, "<｜User｜>Hi<｜Assistant｜><think>"}));
}

TEST(ChatEncoding, DeveloperMessageNeedsContent) {
  EXPECT_THROW(encode_chat(std::vector{message(ChatRole::developer, "")}, kChat), Error);
}

TEST(ChatEncoding, SystemResponseFormatIsPythonJson) {
  ChatMessage system = message(ChatRole::system, "S");
  system.response_format = nlohmann::ordered_json::parse(
      R"({"type": "json_schema", "schema": {"b": 1, "a": [1.0, 1e-05, 1e16, 123456789012345678]}})");
  const std::vector messages = {system, message(ChatRole::user, "Hi")};
  EXPECT_EQ(encode_chat(messages, kChat),
            cat({kBos,
                 "S\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to "
                 "reply:\n{\"type\": \"json_schema\", \"schema\": {\"b\": 1, \"a\": [1.0, 1e-05, "
                 "1e+16, 123456789012345678]}}<｜User｜>Hi<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, LatestReminderFollowsTheAssistantPrompt) {
  const std::vector messages = {message(ChatRole::user, "Hi"),
                                message(ChatRole::latest_reminder, "Today is Monday.")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "<｜User｜>Hi<｜Assistant｜><think><｜latest_reminder｜>Today is Monday."}));
}

TEST(ChatEncoding, TasksEndWithTheirToken) {
  ChatMessage query = message(ChatRole::user, "weather paris");
  query.task = "query";
  EXPECT_EQ(encode_chat(std::vector{query}, kChat),
            cat({kBos, "<｜User｜>weather paris<｜query｜>"}));

  ChatMessage action = message(ChatRole::user, "book it");
  action.task = "action";
  const std::vector messages = {action, message(ChatRole::assistant, "done", "x")};
  EXPECT_EQ(encode_chat(messages, kThinking),
            cat({kBos, "<｜User｜>book it<｜Assistant｜><think><｜action｜>done", kEos}));

  ChatMessage unknown = message(ChatRole::user, "?");
  unknown.task = "dance";
  EXPECT_THROW(encode_chat(std::vector{unknown}, kChat), Error);
}

TEST(ChatEncoding, MaximumReasoningEffortPrefixesThinkingPrompts) {
  const std::vector messages = {message(ChatRole::system, "S"), message(ChatRole::user, "Hi")};
  ChatEncodeOptions options = kThinking;
  options.reasoning_effort = ReasoningEffort::max;
  EXPECT_EQ(encode_chat(messages, options),
            cat({kBos,
                 "Reasoning Effort: Absolute maximum with no shortcuts permitted.\nYou MUST be "
                 "very thorough in your thinking and comprehensively decompose the problem to "
                 "resolve the root cause, rigorously stress-testing your logic against all "
                 "potential paths, edge cases, and adversarial scenarios.\nExplicitly write out "
                 "your entire deliberation process, documenting every intermediate step, "
                 "considered alternative, and rejected hypothesis to ensure absolutely no "
                 "assumption is left unchecked.\n\nS<｜User｜>Hi<｜Assistant｜><think>"}));
  options.mode = ThinkingMode::chat;
  EXPECT_EQ(encode_chat(messages, options), cat({kBos, "S<｜User｜>Hi<｜Assistant｜></think>"}));
}

TEST(ChatEncoding, ContinuationAfterContextHasNoBos) {
  std::vector<ChatMessage> context = two_turns();
  context.pop_back();
  const std::vector messages = {message(ChatRole::user, "Next")};
  EXPECT_EQ(encode_chat(messages, kThinking, context), "<｜User｜>Next<｜Assistant｜><think>");
  EXPECT_EQ(encode_chat(messages, kChat, context), "<｜User｜>Next<｜Assistant｜></think>");
}

TEST(ChatEncoding, MessagesFromOpenAiJson) {
  const auto json = nlohmann::ordered_json::parse(R"([
      {"role": "system", "content": "S", "tools": [{"type": "function",
          "function": {"name": "f", "parameters": {}}}]},
      {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]},
      {"role": "assistant", "content": null, "reasoning_content": "r", "tool_calls": [
          {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "ok"}])");
  const std::vector<ChatMessage> messages = chat_messages_from_json(json);
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].tools.size(), 1u);
  EXPECT_EQ(messages[1].content, "look\n\n[Unsupported image_url]");
  EXPECT_EQ(messages[2].content, "");
  EXPECT_EQ(messages[2].tool_calls.at(0).arguments, "{\"x\": 1}");
  EXPECT_EQ(messages[3].role, ChatRole::tool);
  EXPECT_EQ(messages[3].tool_call_id, "c1");
  EXPECT_THROW(chat_message_from_json(nlohmann::ordered_json::parse(R"({"role": "robot"})")),
               Error);
}

}  // namespace
}  // namespace dsv4
