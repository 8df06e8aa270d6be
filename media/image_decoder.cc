#include "media/image_decoder.h"

extern "C" {
#include <libavutil/imgutils.h>
}

#include <climits>
#include <cstring>
#include <optional>
#include <string>

#include "common/error.h"
#include "media/av_handles.h"

namespace vidgen::media {
namespace {

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);
constexpr std::string_view kPngEnd("\0\0\0\0IEND\xae\x42\x60\x82", 12);  // the IEND chunk, CRC included
constexpr std::string_view kJpegStart("\xff\xd8\xff", 3);
constexpr std::string_view kJpegEnd("\xff\xd9", 2);

struct Size {
  std::int64_t width = 0, height = 0;
};

std::uint32_t BigEndian(std::string_view bytes, std::size_t at, int length) {
  std::uint32_t value = 0;
  for (int i = 0; i < length; ++i) value = value << 8 | static_cast<std::uint8_t>(bytes[at + i]);
  return value;
}

// The size a PNG's IHDR declares.
std::optional<Size> PngSize(std::string_view bytes) {
  if (bytes.size() < 33 || bytes.substr(12, 4) != "IHDR") return std::nullopt;
  return Size{BigEndian(bytes, 16, 4), BigEndian(bytes, 20, 4)};
}

// The size the first start-of-frame segment of a JPEG declares, walking the segments before it, when its scan
// (from the start-of-scan segment on) ends in EOI: anything may follow (a phone's motion photo appends a video),
// but a file cut inside the scan has no EOI after it.
std::optional<Size> JpegSize(std::string_view bytes) {
  std::optional<Size> size;
  std::size_t at = 2;
  while (at + 4 <= bytes.size()) {
    if (static_cast<std::uint8_t>(bytes[at]) != 0xff) return std::nullopt;
    const auto marker = static_cast<std::uint8_t>(bytes[at + 1]);
    if (marker == 0xff) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0xda) {  // start of scan: the entropy-coded data follow
      if (!size || bytes.find(kJpegEnd, at) == std::string_view::npos) return std::nullopt;
      return size;
    }
    const bool start_of_frame = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (start_of_frame && !size) {
      if (at + 9 > bytes.size()) return std::nullopt;
      size = Size{BigEndian(bytes, at + 7, 2), BigEndian(bytes, at + 5, 2)};
    }
    at += 2 + BigEndian(bytes, at + 2, 2);
  }
  return std::nullopt;
}

DecodedImage Decode(std::string_view bytes, std::int64_t max_pixels) {
  AVCodecID codec_id = AV_CODEC_ID_NONE;
  std::optional<Size> size;
  if (bytes.starts_with(kPngSignature)) {
    if (!bytes.ends_with(kPngEnd)) Fail(ErrorCode::kInvalidArgument, "the PNG is truncated (it does not end in IEND)");
    codec_id = AV_CODEC_ID_PNG;
    size = PngSize(bytes);
  } else if (bytes.starts_with(kJpegStart)) {
    codec_id = AV_CODEC_ID_MJPEG;
    size = JpegSize(bytes);
    if (!size) Fail(ErrorCode::kInvalidArgument, "the JPEG is truncated (no frame header, or no EOI after its scan)");
  } else {
    Fail(ErrorCode::kInvalidArgument, "the image is not a PNG or a JPEG ({} bytes)", bytes.size());
  }
  if (!size || size->width < 1 || size->height < 1) {
    Fail(ErrorCode::kInvalidArgument, "the image's header does not declare its size");
  }
  if (size->width * size->height > max_pixels) {
    Fail(ErrorCode::kInvalidArgument, "the image is {}×{} = {} pixels; the limit is {}", size->width, size->height,
         size->width * size->height, max_pixels);
  }
  if (bytes.size() > INT_MAX / 2) Fail(ErrorCode::kInvalidArgument, "the image is {} bytes", bytes.size());

  const AVCodec* decoder = avcodec_find_decoder(codec_id);
  if (!decoder) Fail(ErrorCode::kUnimplemented, "this FFmpeg has no {} decoder", avcodec_get_name(codec_id));
  CodecContextPtr codec(avcodec_alloc_context3(decoder));
  if (!codec) Fail(ErrorCode::kResourceExhausted, "cannot allocate an image decoder");
  codec->max_pixels = max_pixels;
  codec->err_recognition = AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_EXPLODE;  // refuse, do not conceal
  codec->thread_count = 1;
  auto check = [](int code, const char* what) {
    if (code < 0) Fail(ErrorCode::kInvalidArgument, "the image cannot be decoded ({}: {})", what, AvError(code));
  };
  check(avcodec_open2(codec.get(), decoder, nullptr), "open");

  PacketPtr packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!packet || !frame || av_new_packet(packet.get(), static_cast<int>(bytes.size())) < 0) {
    Fail(ErrorCode::kResourceExhausted, "cannot allocate {} bytes for an image", bytes.size());
  }
  std::memcpy(packet->data, bytes.data(), bytes.size());
  check(avcodec_send_packet(codec.get(), packet.get()), "send");
  check(avcodec_send_packet(codec.get(), nullptr), "flush");
  check(avcodec_receive_frame(codec.get(), frame.get()), "decode");
  if (frame->width != size->width || frame->height != size->height) {
    Fail(ErrorCode::kInvalidArgument, "the image decodes to {}×{}, not the {}×{} its header declares", frame->width,
         frame->height, size->width, size->height);
  }

  DecodedImage image;
  image.width = frame->width;
  image.height = frame->height;
  image.rgb.resize(static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 3);
  ScalePtr scale(sws_getContext(image.width, image.height, static_cast<AVPixelFormat>(frame->format), image.width,
                                image.height, AV_PIX_FMT_RGB24, SWS_POINT, nullptr, nullptr, nullptr));
  if (!scale) {
    Fail(ErrorCode::kInvalidArgument, "the image's pixel format {} cannot be converted to RGB",
         av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format)));
  }
  std::uint8_t* planes[1] = {image.rgb.data()};
  const int strides[1] = {3 * image.width};
  sws_scale(scale.get(), frame->data, frame->linesize, 0, image.height, planes, strides);
  return image;
}

}  // namespace

DecodedImage DecodeImage(std::string_view bytes, std::int64_t max_pixels, std::string_view field) {
  try {
    return Decode(bytes, max_pixels);
  } catch (const Error& e) {
    Fail(e.code(), "{}: {}", field, e.what());
  }
}

}  // namespace vidgen::media
