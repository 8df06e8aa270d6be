// Writing video frames as PNG files (through libpng).
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace vidgen::tools {

// Writes an RGB image [H, W, 3] uint8 to `path`. Throws Error naming the path when it cannot.
void WritePng(const std::string& path, const at::Tensor& rgb);

}  // namespace vidgen::tools
