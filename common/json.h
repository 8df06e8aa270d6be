// JSON from files and clients, parsed with its nesting bounded before anything recursive (nlohmann's copy, dump and
// comparison recurse; its parser does not) can overflow the stack, and its size bounded before it is read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"

namespace vidgen {

// Deeper than any config, tokenizer or index file we read; shallow enough for every recursive JSON operation.
inline constexpr int kMaxJsonDepth = 64;

// A parser's message, cut short: nlohmann quotes the offending token, which may be as long as the text.
inline std::string JsonErrorReason(const std::exception& error) {
  std::string reason = error.what();
  if (reason.size() > 200) reason = reason.substr(0, 200) + "...";
  return reason;
}

// Parses `text`; throws Error(INVALID_ARGUMENT) naming `what` when it is not JSON or nests deeper than
// `max_depth`.
inline nlohmann::json ParseJson(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth) {
  const auto bounded = [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) throw std::length_error("nesting");
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), bounded);
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "{} is not valid JSON: {}", what, JsonErrorReason(e));
  } catch (const std::length_error&) {
    Fail(ErrorCode::kInvalidArgument, "{} nests JSON deeper than {} levels", what, max_depth);
  }
}

// Reads and parses the JSON file at `path` of at most `max_bytes`; throws Error(NOT_FOUND) when it cannot be read,
// Error(INVALID_ARGUMENT) naming `what` and the path when it is larger, not JSON or nested too deep.
inline nlohmann::json ReadJsonFile(const std::string& path, std::string_view what, std::uintmax_t max_bytes) {
  return ParseJson(ReadBoundedFile(path, what, max_bytes), fmt::format("{} '{}'", what, path));
}

// A value for an error message: its JSON text, cut to `limit` characters.
inline std::string JsonExcerpt(const nlohmann::json& value, std::size_t limit = 80) {
  std::string text = value.dump();
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

}  // namespace vidgen
