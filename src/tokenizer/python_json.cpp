#include "tokenizer/python_json.h"

#include <charconv>
#include <cmath>

#include "core/error.h"

namespace dsv4 {

namespace {

// Python's repr of a float: the shortest digits that round-trip, in positional notation when
// the decimal exponent is in [-4, 16), with ".0" on integral values; otherwise d.ddde+XX.
std::string python_float_repr(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[64];
  const auto scientific =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string text(buffer, scientific.ptr);
  const size_t e = text.find('e');
  const int exponent = std::stoi(text.substr(e + 1));
  if (exponent < -4 || exponent >= 16) return text;
  const auto fixed =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed);
  std::string positional(buffer, fixed.ptr);
  if (positional.find('.') == std::string::npos) positional += ".0";
  return positional;
}

void dump(const nlohmann::ordered_json& value, std::string& out) {
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, member] : value.items()) {
        if (!first) out += ", ";
        first = false;
        out += nlohmann::ordered_json(key).dump();
        out += ": ";
        dump(member, out);
      }
      out += '}';
      return;
    }
    case nlohmann::ordered_json::value_t::array: {
      out += '[';
      for (size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ", ";
        dump(value[i], out);
      }
      out += ']';
      return;
    }
    case nlohmann::ordered_json::value_t::number_float:
      out += python_float_repr(value.get<double>());
      return;
    default:
      // Strings escape the same characters in both (quote, backslash, controls as \n or \u00xx
      // in lower-case hex); integers, booleans and null print alike.
      try {
        out += value.dump();
      } catch (const nlohmann::ordered_json::type_error& error) {
        fail("cannot write JSON: {}", error.what());
      }
      return;
  }
}

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value) {
  std::string out;
  dump(value, out);
  return out;
}

}  // namespace dsv4
