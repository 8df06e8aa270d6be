// RGB pixels to PNG bytes, through libavcodec: the images a process makes for a job of its own (a worker group's
// memory probes of an image-to-video model).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace vidgen::media {

// `rgb` is height × width × 3, row after row. Throws Error(INVALID_ARGUMENT) when its size is not that.
std::string EncodePng(std::span<const std::uint8_t> rgb, int width, int height);

}  // namespace vidgen::media
