// libFuzzer: any bytes as the data.pkl of a torch.save archive, through the restricted unpickler.
#include <cstdint>
#include <span>

#include "common/error.h"
#include "models/io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    vidgen::io::pickle::Load(std::span(data, size), "fuzz");
  } catch (const vidgen::Error&) {
  }
  return 0;
}
