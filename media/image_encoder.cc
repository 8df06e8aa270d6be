#include "media/image_encoder.h"

#include <cstring>

#include "common/error.h"
#include "media/av_handles.h"

namespace vidgen::media {

std::string EncodePng(std::span<const std::uint8_t> rgb, int width, int height) {
  if (width < 1 || height < 1 || rgb.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3) {
    Fail(ErrorCode::kInvalidArgument, "{} bytes are not a {}×{} RGB image", rgb.size(), width, height);
  }
  const AVCodec* encoder = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!encoder) Fail(ErrorCode::kUnimplemented, "this FFmpeg has no PNG encoder");
  CodecContextPtr codec(avcodec_alloc_context3(encoder));
  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  if (!codec || !frame || !packet) Fail(ErrorCode::kResourceExhausted, "cannot allocate a PNG encoder");
  codec->width = width;
  codec->height = height;
  codec->pix_fmt = AV_PIX_FMT_RGB24;
  codec->time_base = {1, 1};
  auto check = [](int code, const char* what) {
    if (code < 0) Fail(ErrorCode::kInternal, "cannot encode a PNG ({}: {})", what, AvError(code));
  };
  check(avcodec_open2(codec.get(), encoder, nullptr), "open");
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = width;
  frame->height = height;
  check(av_frame_get_buffer(frame.get(), 0), "frame");
  for (int y = 0; y < height; ++y) {
    std::memcpy(frame->data[0] + static_cast<std::ptrdiff_t>(y) * frame->linesize[0],
                rgb.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width) * 3,
                static_cast<std::size_t>(width) * 3);
  }
  check(avcodec_send_frame(codec.get(), frame.get()), "send");
  check(avcodec_send_frame(codec.get(), nullptr), "flush");
  check(avcodec_receive_packet(codec.get(), packet.get()), "receive");
  return {reinterpret_cast<const char*>(packet->data), static_cast<std::size_t>(packet->size)};
}

}  // namespace vidgen::media
