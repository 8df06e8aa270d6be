// libFuzzer: any bytes as a torch.save zip archive's directory, and every entry it lists read back.
#include <cstdint>
#include <span>

#include "common/error.h"
#include "models/io/zip_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const vidgen::io::ZipArchive archive(std::span(data, size), "fuzz");
    std::uint64_t sum = 0;
    for (const auto& entry : archive.entries()) {
      for (const auto byte : archive.Data(entry)) sum += byte;
    }
    static volatile std::uint64_t sink;
    sink = sum;
  } catch (const vidgen::Error&) {
  }
  return 0;
}
