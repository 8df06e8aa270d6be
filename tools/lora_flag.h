// --lora NAME[:SCALE] (vidgen submit) or PATH[:SCALE] (vidgen-generate, vidgen-bench quality): the LoRA before the
// last ':' and the scale after it.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace vidgen::tools {

struct LoraFlag {
  std::string name;
  std::optional<double> scale;  // none: the job's default, 1
};

inline LoraFlag ParseLoraFlag(const std::string& text) {
  const auto colon = text.rfind(':');
  LoraFlag flag{text.substr(0, colon), std::nullopt};
  if (colon == std::string::npos) return flag;
  try {
    std::size_t used = 0;
    flag.scale = std::stod(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) throw std::invalid_argument("trailing characters");
  } catch (const std::logic_error&) {
    Fail(ErrorCode::kInvalidArgument, "--lora '{}' is not NAME[:SCALE]", text);
  }
  return flag;
}

}  // namespace vidgen::tools
