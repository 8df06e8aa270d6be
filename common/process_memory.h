// The process's resident memory from /proc/self (Linux): now, at its peak, and the peak started again.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/error.h"

namespace vidgen {

// A field of a process's /proc status in bytes ("VmRSS": resident now, "VmHWM": the peak); `process` is a pid or
// "self".
inline std::int64_t ProcessStatusBytes(const std::string& field, const std::string& process = "self") {
  std::ifstream status("/proc/" + process + "/status");
  for (std::string line; std::getline(status, line);) {
    long kib = 0;
    if (line.starts_with(field + ":") && std::sscanf(line.c_str() + field.size() + 1, "%ld", &kib) == 1) {
      return static_cast<std::int64_t>(kib) * 1024;
    }
  }
  Fail(ErrorCode::kInternal, "/proc/{}/status has no {}", process, field);
}

// Starts the peak resident size (VmHWM) again from the current one.
inline void ResetPeakResidentBytes() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

}  // namespace vidgen
