// libFuzzer: any bytes as a sentencepiece .model, through the check that runs before libsentencepiece sees it.
#include <cstdint>
#include <span>

#include "common/error.h"
#include "models/io/sentencepiece_model.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    vidgen::io::CheckSentencePieceModel(std::span(data, size), "fuzz");
  } catch (const vidgen::Error&) {
  }
  return 0;
}
