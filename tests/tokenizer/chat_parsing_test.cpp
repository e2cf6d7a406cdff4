// Generated text back into reasoning, content and DSML tool calls, as DeepSeek's
// parse_message_from_completion_text reads it, and the errors it reports for malformed text.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/chat_parsing.h"

namespace dsv4 {
namespace {

const std::string kEos = "<｜end▁of▁sentence｜>";
const std::string kCallsOpen = "\n\n<｜DSML｜tool_calls>\n";
const std::string kCallsClose = "</｜DSML｜tool_calls>";

std::string invoke(const std::string& name, const std::string& parameters) {
  return "<｜DSML｜invoke name=\"" + name + "\">\n" + parameters + "\n</｜DSML｜invoke>\n";
}

std::string parameter(const std::string& name, bool is_string, const std::string& value) {
  return "<｜DSML｜parameter name=\"" + name + "\" string=\"" + (is_string ? "true" : "false") +
         "\">" + value + "</｜DSML｜parameter>";
}

// The message of a failed parse, or "" when it succeeded.
std::string parse_error(const std::string& text, ThinkingMode mode, ParseOptions options = {}) {
  try {
    parse_completion(text, mode, options);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(ChatParsing, ChatModeContent) {
  const ParsedCompletion parsed = parse_completion("Hello there." + kEos, ThinkingMode::chat);
  EXPECT_EQ(parsed.content, "Hello there.");
  EXPECT_EQ(parsed.reasoning_content, "");
  EXPECT_TRUE(parsed.tool_calls.empty());
  EXPECT_TRUE(parsed.complete);
}

TEST(ChatParsing, ThinkingModeReasoningThenContent) {
  const ParsedCompletion parsed =
      parse_completion("I should greet.</think>Hello!" + kEos, ThinkingMode::thinking);
  EXPECT_EQ(parsed.reasoning_content, "I should greet.");
  EXPECT_EQ(parsed.content, "Hello!");
}

TEST(ChatParsing, ToolCallAfterReasoning) {
  const std::string text = "The user wants weather.</think>" + kCallsOpen +
                           invoke("get_weather", parameter("location", true, "Beijing") + "\n" +
                                                     parameter("days", false, "2")) +
                           kCallsClose + kEos;
  const ParsedCompletion parsed = parse_completion(text, ThinkingMode::thinking);
  EXPECT_EQ(parsed.reasoning_content, "The user wants weather.");
  EXPECT_EQ(parsed.content, "");
  ASSERT_EQ(parsed.tool_calls.size(), 1u);
  EXPECT_EQ(parsed.tool_calls[0].name, "get_weather");
  EXPECT_EQ(parsed.tool_calls[0].arguments, R"({"location": "Beijing", "days": 2})");
}

TEST(ChatParsing, SeveralInvokesWithMultilineAndJsonValues) {
  const std::string text = "Checking." + kCallsOpen +
                           invoke("a", parameter("q", true, "line1\nline \"2\"") + "\n" +
                                           parameter("n", false, R"({"k": [1, 2]})")) +
                           invoke("b", "") + kCallsClose;
  // After a closed tool-call block EOS may be missing, as in the reference.
  const ParsedCompletion parsed = parse_completion(text, ThinkingMode::chat);
  EXPECT_EQ(parsed.content, "Checking.");
  ASSERT_EQ(parsed.tool_calls.size(), 2u);
  EXPECT_EQ(parsed.tool_calls[0].arguments, R"({"q": "line1\nline \"2\"", "n": {"k": [1, 2]}})");
  EXPECT_EQ(parsed.tool_calls[1].name, "b");
  EXPECT_EQ(parsed.tool_calls[1].arguments, "{}");
  EXPECT_TRUE(parsed.complete);
}

TEST(ChatParsing, ReadsBackWhatTheEncoderWrites) {
  ChatMessage user;
  user.content = "go";
  ChatMessage assistant;
  assistant.role = ChatRole::assistant;
  assistant.reasoning_content = "Two calls.";
  assistant.content = "On it.";
  assistant.tool_calls = {{"", "search", R"({"query": "café", "limit": 5, "exact": false})"},
                          {"", "noop", "{}"}};
  ChatEncodeOptions options;
  options.mode = ThinkingMode::thinking;
  options.add_bos = false;
  const std::string prompt = encode_chat(std::vector{user, assistant}, options);
  const std::string prefix = "<｜User｜>go<｜Assistant｜><think>";
  ASSERT_EQ(prompt.substr(0, prefix.size()), prefix);
  const ParsedCompletion parsed =
      parse_completion(prompt.substr(prefix.size()), ThinkingMode::thinking);
  EXPECT_EQ(parsed.reasoning_content, assistant.reasoning_content);
  EXPECT_EQ(parsed.content, assistant.content);
  ASSERT_EQ(parsed.tool_calls.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(parsed.tool_calls[i].name, assistant.tool_calls[i].name);
    EXPECT_EQ(parsed.tool_calls[i].arguments, assistant.tool_calls[i].arguments);
  }
}

TEST(ChatParsing, MissingEndMarkersFail) {
  EXPECT_NE(parse_error("Hello", ThinkingMode::chat), "");
  EXPECT_NE(parse_error("thinking...", ThinkingMode::thinking), "");
  // Tool calls may not start inside the reasoning.
  EXPECT_NE(parse_error("hmm" + kCallsOpen, ThinkingMode::thinking), "");
}

TEST(ChatParsing, TextAfterTheEndFails) {
  EXPECT_NE(parse_error("Hi" + kEos + "more", ThinkingMode::chat), "");
  EXPECT_NE(
      parse_error(kCallsOpen + invoke("a", "") + kCallsClose + "oops" + kEos, ThinkingMode::chat),
      "");
}

TEST(ChatParsing, SpecialTokenInContentFails) {
  EXPECT_NE(parse_error("a<think>b" + kEos, ThinkingMode::chat).find("<think>"), std::string::npos);
}

TEST(ChatParsing, MalformedDsmlFails) {
  const auto error_of = [](const std::string& calls) {
    return parse_error(kCallsOpen + calls + kCallsClose + kEos, ThinkingMode::chat);
  };
  EXPECT_NE(error_of(invoke("a", parameter("x", true, "1") + "\n" + parameter("x", true, "2")))
                .find("given twice"),
            std::string::npos);
  EXPECT_NE(error_of("<｜DSML｜invoke nam=a>\n</｜DSML｜invoke>\n").find("malformed invoke"),
            std::string::npos);
  EXPECT_NE(error_of("<｜DSML｜invoke name=\"a\">\n<｜DSML｜parameter name=\"x\" "
                     "string=\"maybe\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n")
                .find("malformed parameter"),
            std::string::npos);
  EXPECT_NE(error_of("junk" + invoke("a", "")).find("expected"), std::string::npos);
}

TEST(ChatParsing, TruncatedToolCallsFailUnlessAllowed) {
  const std::string text = kCallsOpen + invoke("a", "") +
                           "<｜DSML｜invoke name=\"b\">\n<｜DSML｜parameter name=\"x\" string=\"tr";
  EXPECT_NE(parse_error(text, ThinkingMode::chat), "");
  const ParsedCompletion parsed =
      parse_completion("Let me check." + text, ThinkingMode::chat, {.allow_truncated = true});
  EXPECT_FALSE(parsed.complete);
  EXPECT_EQ(parsed.content, "Let me check.");
  ASSERT_EQ(parsed.tool_calls.size(), 1u);  // the cut-off call is dropped
  EXPECT_EQ(parsed.tool_calls[0].name, "a");
}

TEST(ChatParsing, TruncatedTextIsAcceptedWhenAllowed) {
  const ParseOptions options{.allow_truncated = true};
  ParsedCompletion parsed = parse_completion("Hello", ThinkingMode::chat, options);
  EXPECT_EQ(parsed.content, "Hello");
  EXPECT_FALSE(parsed.complete);

  parsed = parse_completion("Still thinking", ThinkingMode::thinking, options);
  EXPECT_EQ(parsed.reasoning_content, "Still thinking");
  EXPECT_EQ(parsed.content, "");
  EXPECT_FALSE(parsed.complete);

  parsed = parse_completion("Done.</think>Answer" + kEos, ThinkingMode::thinking, options);
  EXPECT_TRUE(parsed.complete);
  EXPECT_EQ(parsed.content, "Answer");
}

}  // namespace
}  // namespace dsv4
