// A command-line tool's main body with every failure turned into one line on stderr and an exit status, so that
// nothing a user or a file can cause ends in an abort: 2 for a vidgen::Error (its code named), 3 when memory ran
// out, 1 for anything else (the first line of its message: LibTorch appends a backtrace).
#pragma once

#include <exception>
#include <new>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/error.h"

namespace vidgen {

template <typename Body>
int RunTool(std::string_view tool, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    fmt::print(stderr, "{}: {}: {}\n", tool, ErrorCodeName(e.code()), e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "{}: RESOURCE_EXHAUSTED: out of memory\n", tool);
    return 3;
  } catch (const std::exception& e) {
    const std::string message = e.what();
    fmt::print(stderr, "{}: INTERNAL: {}\n", tool, message.substr(0, message.find('\n')));
    return 1;
  }
}

}  // namespace vidgen
