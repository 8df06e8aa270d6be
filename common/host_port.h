// "host:port" listen addresses of the HTTP endpoints ("[::1]:8080" for IPv6; port 0: any free port).
#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace vidgen {

// Throws Error(INVALID_ARGUMENT) naming `what` for an address that does not parse.
inline std::pair<std::string, int> ParseHostPort(const std::string& listen, std::string_view what) {
  const auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    const char* end = listen.data() + listen.size();
    const auto [last, error] = std::from_chars(listen.data() + colon + 1, end, port);
    if (error != std::errc() || last != end) port = -1;
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    Fail(ErrorCode::kInvalidArgument, "{} '{}' is not host:port", what, listen.substr(0, 100));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, port};
}

}  // namespace vidgen
