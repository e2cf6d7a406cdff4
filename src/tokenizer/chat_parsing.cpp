#include "tokenizer/chat_parsing.h"

#include <map>
#include <optional>

#include "core/error.h"
#include "tokenizer/chat_tokens.h"
#include "tokenizer/python_json.h"

namespace dsv4 {

namespace {

using namespace chat_tokens;

// Generated tool calls start on their own paragraph.
constexpr std::string_view kToolCallsOpening = "\n\n<｜DSML｜tool_calls";
constexpr std::string_view kParameterClose = "/｜DSML｜parameter";
constexpr std::string_view kTagEnd = ">\n";

// The text from `index` up to the earliest of `stops` (the first listed wins a tie), and where
// reading resumes after it; `stop` is empty when none occurs and the text ran out.
struct Reading {
  std::string_view text;
  std::string_view stop;
  size_t next;
};

Reading read_until(std::string_view text, size_t index,
                   std::initializer_list<std::string_view> stops) {
  size_t earliest = text.size();
  std::string_view matched;
  for (const std::string_view stop : stops) {
    const size_t at = text.find(stop, index);
    if (at != std::string_view::npos && at < earliest) {
      earliest = at;
      matched = stop;
    }
  }
  if (matched.empty()) return {text.substr(index), {}, text.size()};
  return {text.substr(index, earliest - index), matched, earliest + matched.size()};
}

// The text before a line end anchored as Python's `$` anchors it: at the very end, or before a
// final newline.
std::optional<std::string_view> strip_final(std::string_view text, std::string_view suffix) {
  if (text.ends_with(suffix)) return text.substr(0, text.size() - suffix.size());
  if (text.ends_with('\n') && text.substr(0, text.size() - 1).ends_with(suffix)) {
    return text.substr(0, text.size() - 1 - suffix.size());
  }
  return std::nullopt;
}

// Python's str.isspace for the characters that can lead an invoke's name attribute.
size_t python_space_prefix(std::string_view text) {
  size_t length = 0;
  while (length < text.size()) {
    const auto byte = static_cast<unsigned char>(text[length]);
    if ((byte >= 0x09 && byte <= 0x0D) || (byte >= 0x1C && byte <= 0x20)) {
      ++length;
      continue;
    }
    static constexpr std::string_view kWideSpaces[] = {
        "\u0085", "\u00A0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003",
        "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200A",
        "\u2028", "\u2029", "\u202F", "\u205F", "\u3000"};
    bool wide = false;
    for (const std::string_view space : kWideSpaces) {
      if (text.substr(length).starts_with(space)) {
        length += space.size();
        wide = true;
        break;
      }
    }
    if (!wide) break;
  }
  return length;
}

// `\s*name="(.*?)">\n$` over what follows "<｜DSML｜invoke".
std::optional<std::string> invoke_name(std::string_view header) {
  header.remove_prefix(python_space_prefix(header));
  constexpr std::string_view kPrefix = "name=\"";
  if (!header.starts_with(kPrefix)) return std::nullopt;
  const auto name = strip_final(header.substr(kPrefix.size()), "\">\n");
  if (!name) return std::nullopt;
  return std::string(*name);
}

struct Parameter {
  std::string name, value;
  bool is_string;
};

// ` name="(.*?)" string="(true|false)">(.*?)<$` over what lies between "<｜DSML｜parameter" and
// "/｜DSML｜parameter".
std::optional<Parameter> parameter(std::string_view text) {
  constexpr std::string_view kPrefix = " name=\"";
  if (!text.starts_with(kPrefix)) return std::nullopt;
  text.remove_prefix(kPrefix.size());
  const auto body = strip_final(text, "<");
  if (!body) return std::nullopt;
  // The shortest name after which the string flag follows.
  for (size_t at = 0; at < body->size(); ++at) {
    for (const bool is_string : {true, false}) {
      const std::string flag = is_string ? "\" string=\"true\">" : "\" string=\"false\">";
      if (body->substr(at).starts_with(flag)) {
        return Parameter{std::string(body->substr(0, at)),
                         std::string(body->substr(at + flag.size())), is_string};
      }
    }
  }
  return std::nullopt;
}

std::string arguments_json(const std::vector<Parameter>& parameters) {
  std::string json = "{";
  for (const Parameter& p : parameters) {
    if (json.size() > 1) json += ", ";
    json += python_json_dumps(p.name) + ": " + (p.is_string ? python_json_dumps(p.value) : p.value);
  }
  return json + "}";
}

// Parses the DSML tool-call block from `index` (just after "\n\n<｜DSML｜tool_calls") into
// `calls`; returns where reading resumes, or nullopt when the text stops inside the block and
// truncation is allowed.
std::optional<size_t> parse_tool_calls(std::string_view text, size_t index, bool allow_truncated,
                                       std::vector<ToolCall>& calls) {
  // Running out of text inside the block: the reference's error, or the end of a cut text.
  const auto ran_out = [&](std::string_view what) -> std::optional<size_t> {
    if (allow_truncated) return std::nullopt;
    fail("tool calls: the text ends inside {}", what);
  };
  while (index < text.size()) {
    Reading tag = read_until(text, index, {kInvokeStart, kToolCallsEnd});
    if (tag.text != kTagEnd) {
      if (tag.stop.empty() && kTagEnd.starts_with(tag.text)) return ran_out("a DSML tag");
      fail("tool calls: expected \">\\n\" after a DSML tag, found {:?}", tag.text);
    }
    index = tag.next;
    if (tag.stop == kToolCallsEnd) return index;
    if (tag.stop.empty()) return ran_out("the tool-call block");

    Reading header = read_until(text, index, {kParameterStart, kInvokeEnd});
    if (header.stop.empty() && allow_truncated) return std::nullopt;
    const auto name = invoke_name(header.text);
    if (!name) fail("tool calls: malformed invoke {:?}", header.text);
    index = header.next;

    std::vector<Parameter> parameters;
    Reading after = header;
    while (after.stop == kParameterStart) {
      const Reading body = read_until(text, index, {kParameterClose});
      if (body.stop.empty() && allow_truncated) return std::nullopt;
      auto p = parameter(body.text);
      if (!p) fail("tool calls: malformed parameter {:?}", body.text);
      for (const Parameter& existing : parameters) {
        if (existing.name == p->name) fail("tool calls: parameter {:?} given twice", p->name);
      }
      parameters.push_back(std::move(*p));
      after = read_until(text, body.next, {kParameterStart, kInvokeEnd});
      if (after.stop.empty() && allow_truncated) return std::nullopt;
      if (after.text != kTagEnd) {
        fail("tool calls: expected \">\\n\" after a parameter, found {:?}", after.text);
      }
      index = after.next;
    }
    calls.push_back(ToolCall{{}, *name, arguments_json(parameters)});
  }
  return index;
}

void check_no_special_tokens(const ParsedCompletion& parsed) {
  for (const std::string_view token : {kBos, kEos, kThinkStart, kThinkEnd, kDsml}) {
    if (parsed.content.find(token) != std::string::npos) {
      fail("completion: unexpected {} in the content", token);
    }
    if (parsed.reasoning_content.find(token) != std::string::npos) {
      fail("completion: unexpected {} in the reasoning", token);
    }
  }
}

}  // namespace

ParsedCompletion parse_completion(std::string_view text, ThinkingMode mode,
                                  const ParseOptions& options) {
  ParsedCompletion parsed;
  size_t index = 0;
  if (mode == ThinkingMode::thinking) {
    const Reading reasoning = read_until(text, 0, {kThinkEnd, kToolCallsOpening});
    parsed.reasoning_content = reasoning.text;
    if (reasoning.stop.empty() && options.allow_truncated) {
      parsed.complete = false;
      check_no_special_tokens(parsed);
      return parsed;
    }
    if (reasoning.stop != kThinkEnd) fail("completion: the reasoning does not end with </think>");
    index = reasoning.next;
  }

  const Reading content = read_until(text, index, {kEos, kToolCallsOpening});
  parsed.content = content.text;
  index = content.next;
  std::string_view stop = content.stop;
  if (stop == kToolCallsOpening) {
    const auto end = parse_tool_calls(text, index, options.allow_truncated, parsed.tool_calls);
    if (!end) {
      parsed.complete = false;
      check_no_special_tokens(parsed);
      return parsed;
    }
    const Reading rest = read_until(text, *end, {kEos});
    if (!rest.text.empty())
      fail("completion: unexpected text after the tool calls: {:?}", rest.text);
    index = rest.next;
    stop = rest.stop;
  } else if (stop.empty()) {
    if (!options.allow_truncated) fail("completion: the text does not end with EOS");
    parsed.complete = false;
  }
  if (index != text.size()) {
    fail("completion: unexpected text after EOS: {:?}", text.substr(index));
  }
  check_no_special_tokens(parsed);
  return parsed;
}

}  // namespace dsv4
