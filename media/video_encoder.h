// Frames to a video file with libavformat/libavcodec: H.264 in MP4 (yuv420p, faststart) by default, VP9 in WebM,
// AV1 in either when this FFmpeg has an encoder for it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace vidgen::media {

struct VideoOptions {
  std::string container = "mp4";  // mp4 or webm
  std::string codec = "h264";     // h264, vp9 or av1
  int fps = 16;
  int quality = 0;  // constant rate factor; 0: the codec's default
};

// `rgb`: frames × height × width × 3 bytes, frame after frame. Writes `path` (through a temporary name, renamed when
// complete). Throws vidgen::Error: INVALID_ARGUMENT for a bad shape or option, UNIMPLEMENTED when this FFmpeg lacks
// the codec, INTERNAL naming the failing FFmpeg call.
void EncodeVideo(std::span<const std::uint8_t> rgb, int frames, int height, int width, const VideoOptions& options,
                 const std::string& path);

}  // namespace vidgen::media
