// Video frames to PNG files and images from them (through libpng).
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace vidgen::tools {

// Writes an RGB image [H, W, 3] uint8 to `path`. Throws Error naming the path when it cannot.
void WritePng(const std::string& path, const at::Tensor& rgb);
// Reads a PNG of any colour type as [H, W, 3] uint8 RGB (alpha dropped); throws Error(INVALID_ARGUMENT) naming the
// path when it is not a whole PNG or has more than `max_pixels` pixels.
at::Tensor ReadPng(const std::string& path, std::int64_t max_pixels);

}  // namespace vidgen::tools
