// Reading a whole file whose size is bounded before anything is read.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "common/error.h"

namespace vidgen {

// The bytes of `path`, at most `max_bytes`; throws Error(NOT_FOUND) when it cannot be read and
// Error(INVALID_ARGUMENT) naming `what` and the path when it is larger.
inline std::string ReadBoundedFile(const std::string& path, std::string_view what, std::uintmax_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) Fail(ErrorCode::kNotFound, "cannot read {} '{}'", what, path);
  const auto size = static_cast<std::uintmax_t>(in.tellg());
  if (size > max_bytes) {
    Fail(ErrorCode::kInvalidArgument, "{} '{}' is {} bytes, over the {}-byte limit", what, path, size, max_bytes);
  }
  in.seekg(0);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace vidgen
