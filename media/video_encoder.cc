#include "media/video_encoder.h"

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
}

#include <cstdio>
#include <memory>
#include <vector>

#include "common/error.h"
#include "media/av_handles.h"

namespace vidgen::media {
namespace {

void Check(int code, const char* what) {
  if (code < 0) Fail(ErrorCode::kInternal, "FFmpeg {} failed: {}", what, AvError(code));
}

// Encoders by preference for each codec name.
const AVCodec* FindEncoder(const std::string& codec) {
  std::vector<const char*> names;
  if (codec == "h264") names = {"libx264", "h264"};
  if (codec == "vp9") names = {"libvpx-vp9"};
  if (codec == "av1") names = {"libsvtav1", "libaom-av1", "librav1e"};
  if (names.empty()) Fail(ErrorCode::kInvalidArgument, "unknown codec '{}' (h264, vp9 or av1)", codec);
  for (const char* name : names) {
    if (const AVCodec* encoder = avcodec_find_encoder_by_name(name)) return encoder;
  }
  Fail(ErrorCode::kUnimplemented, "this FFmpeg has no {} encoder", codec);
}

// Sends one frame (nullptr: flush) and writes every packet that comes out.
void Drain(AVCodecContext* codec, AVFrame* frame, AVFormatContext* format, AVStream* stream, AVPacket* packet) {
  Check(avcodec_send_frame(codec, frame), "avcodec_send_frame");
  while (true) {
    const int result = avcodec_receive_packet(codec, packet);
    if (result == AVERROR(EAGAIN) || result == AVERROR_EOF) return;
    Check(result, "avcodec_receive_packet");
    av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
    packet->stream_index = stream->index;
    Check(av_interleaved_write_frame(format, packet), "av_interleaved_write_frame");
  }
}

}  // namespace

void EncodeVideo(std::span<const std::uint8_t> rgb, int frames, int height, int width, const VideoOptions& options,
                 const std::string& path) {
  if (frames < 1 || height < 2 || width < 2 || height % 2 || width % 2) {
    Fail(ErrorCode::kInvalidArgument, "cannot encode {} frames of {}x{} (even sides of at least 2 needed)", frames,
         width, height);
  }
  if (rgb.size() != static_cast<std::size_t>(frames) * height * width * 3) {
    Fail(ErrorCode::kInvalidArgument, "{} bytes of pixels for {} frames of {}x{} RGB", rgb.size(), frames, width,
         height);
  }
  if (options.fps < 1) Fail(ErrorCode::kInvalidArgument, "fps {} must be positive", options.fps);
  const AVCodec* encoder = FindEncoder(options.codec);
  const std::string temporary = path + ".encoding";

  AVFormatContext* raw_format = nullptr;
  Check(avformat_alloc_output_context2(&raw_format, nullptr, options.container.c_str(), temporary.c_str()),
        "avformat_alloc_output_context2");
  std::unique_ptr<AVFormatContext, FormatContextDeleter> format(raw_format);
  CodecContextPtr codec(avcodec_alloc_context3(encoder));
  if (!codec) Fail(ErrorCode::kInternal, "FFmpeg could not allocate a {} encoder", options.codec);
  codec->width = width;
  codec->height = height;
  codec->pix_fmt = AV_PIX_FMT_YUV420P;
  codec->time_base = AVRational{1, options.fps};
  codec->framerate = AVRational{options.fps, 1};
  codec->gop_size = options.fps * 2;
  if (format->oformat->flags & AVFMT_GLOBALHEADER) codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* codec_options = nullptr;
  if (options.quality > 0) av_dict_set_int(&codec_options, "crf", options.quality, 0);
  if (options.codec == "vp9") av_dict_set(&codec_options, "row-mt", "1", 0);
  if (options.codec == "vp9" && options.quality > 0) av_dict_set_int(&codec_options, "b", 0, 0);  // constant quality
  const int opened = avcodec_open2(codec.get(), encoder, &codec_options);
  av_dict_free(&codec_options);
  Check(opened, "avcodec_open2");

  AVStream* stream = avformat_new_stream(format.get(), nullptr);
  if (!stream) Fail(ErrorCode::kInternal, "FFmpeg could not add a stream");
  stream->time_base = codec->time_base;
  stream->avg_frame_rate = codec->framerate;
  Check(avcodec_parameters_from_context(stream->codecpar, codec.get()), "avcodec_parameters_from_context");
  if (const int code = avio_open(&format->pb, temporary.c_str(), AVIO_FLAG_WRITE); code < 0) {
    Fail(ErrorCode::kFailedPrecondition, "cannot write the video '{}': {}", temporary, AvError(code));
  }
  AVDictionary* format_options = nullptr;
  // MP4: the index goes first, so players start before the whole file has arrived.
  if (options.container == "mp4") av_dict_set(&format_options, "movflags", "+faststart", 0);
  const int written = avformat_write_header(format.get(), &format_options);
  av_dict_free(&format_options);
  Check(written, "avformat_write_header");

  FramePtr frame(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  frame->format = codec->pix_fmt;
  frame->width = width;
  frame->height = height;
  Check(av_frame_get_buffer(frame.get(), 0), "av_frame_get_buffer");
  ScalePtr scale(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P, SWS_BICUBIC,
                                nullptr, nullptr, nullptr));
  if (!scale) Fail(ErrorCode::kInternal, "FFmpeg could not set up RGB to YUV conversion");
  const std::size_t frame_bytes = static_cast<std::size_t>(height) * width * 3;
  for (int i = 0; i < frames; ++i) {
    Check(av_frame_make_writable(frame.get()), "av_frame_make_writable");
    const std::uint8_t* source[1] = {rgb.data() + i * frame_bytes};
    const int stride[1] = {width * 3};
    sws_scale(scale.get(), source, stride, 0, height, frame->data, frame->linesize);
    frame->pts = i;
    Drain(codec.get(), frame.get(), format.get(), stream, packet.get());
  }
  Drain(codec.get(), nullptr, format.get(), stream, packet.get());
  Check(av_write_trailer(format.get()), "av_write_trailer");
  format.reset();  // closes the file
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    Fail(ErrorCode::kInternal, "cannot rename '{}' to '{}'", temporary, path);
  }
}

}  // namespace vidgen::media
