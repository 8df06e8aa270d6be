// The images a job brings (an image-to-video model's first and last frames): PNG or JPEG bytes to RGB pixels,
// through libavcodec, with the pixel count bounded before anything is allocated for them.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace vidgen::media {

struct DecodedImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // height × width × 3, row after row
};

// Decodes one PNG or JPEG (alpha dropped, any bit depth or colour type to 8-bit RGB). Throws Error(INVALID_ARGUMENT)
// whose message starts with `field` when the bytes are neither, are truncated or corrupt, or the image has more
// than `max_pixels` pixels.
DecodedImage DecodeImage(std::string_view bytes, std::int64_t max_pixels, std::string_view field);

}  // namespace vidgen::media
