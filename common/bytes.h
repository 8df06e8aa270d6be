// Sizes for people: "512 B", "3.5 MiB", "1.25 GiB".
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace vidgen {

inline std::string ByteSize(std::int64_t bytes) {
  static constexpr std::array<const char*, 4> kUnits = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024 && bytes > -1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  for (value /= 1024; (value >= 1024 || value <= -1024) && unit + 1 < kUnits.size(); value /= 1024) ++unit;
  return fmt::format("{:.{}f} {}", value, value < 10 && value > -10 ? 2 : 1, kUnits[unit]);
}

}  // namespace vidgen
