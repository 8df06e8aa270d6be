// --size WIDTHxHEIGHT ("832x480", or "832*480" as the reference scripts write it), for every tool that takes it.
#pragma once

#include <charconv>
#include <string>
#include <utility>

#include "common/error.h"

namespace vidgen::tools {

// Throws Error(INVALID_ARGUMENT) naming the text unless it is two positive integers joined by 'x' or '*'.
inline std::pair<int, int> ParseSizeFlag(const std::string& text) {
  const auto split = text.find_first_of("x*");
  int width = 0, height = 0;
  const char* end = text.data() + text.size();
  const bool parsed = split != std::string::npos &&
                      std::from_chars(text.data(), text.data() + split, width).ptr == text.data() + split &&
                      std::from_chars(text.data() + split + 1, end, height).ptr == end;
  if (!parsed || split == 0 || split + 1 == text.size() || width <= 0 || height <= 0) {
    Fail(ErrorCode::kInvalidArgument, "--size '{}' is not WIDTHxHEIGHT", text.substr(0, 100));
  }
  return {width, height};
}

}  // namespace vidgen::tools
