// Reading a whole file whose size is bounded before anything is read; writing a port file.
#pragma once

#include <cstdint>
#include <filesystem>
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

// Writes `port` and a newline to `path` through a rename, so that a reader never sees half of it.
inline void WritePortFile(const std::string& path, int port) {
  std::ofstream(path + ".tmp") << port << "\n";
  std::filesystem::rename(path + ".tmp", path);
}

}  // namespace vidgen
