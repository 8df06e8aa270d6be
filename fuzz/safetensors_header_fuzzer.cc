// libFuzzer: any bytes as a safetensors file. A refusal is an Error; anything else (a crash, a leak, a hang, an
// allocation past the limit) is a finding.
#include <cstdint>
#include <span>

#include "common/error.h"
#include "models/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    vidgen::io::ParseSafetensorsHeader(std::span(data, size), "fuzz");
  } catch (const vidgen::Error&) {
  }
  return 0;
}
