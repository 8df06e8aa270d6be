#include "tools/png.h"

#include <png.h>

#include <cstdio>
#include <memory>

#include <torch/torch.h>

#include "common/error.h"
#include "common/file.h"

namespace vidgen::tools {

void WritePng(const std::string& path, const at::Tensor& rgb) {
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kUInt8,
              "WritePng expects [H, W, 3] uint8, got ", rgb.sizes());
  const auto pixels = rgb.contiguous().cpu();
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) Fail(ErrorCode::kInvalidArgument, "cannot create '{}'", path);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    Fail(ErrorCode::kResourceExhausted, "cannot start a PNG for '{}'", path);
  }
  // libpng reports errors by longjmp; nothing with a destructor lives between here and the writes.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    Fail(ErrorCode::kResourceExhausted, "cannot write the PNG '{}'", path);
  }
  const auto height = static_cast<png_uint_32>(pixels.size(0));
  const auto width = static_cast<png_uint_32>(pixels.size(1));
  png_init_io(png, file.get());
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = pixels.data_ptr<std::uint8_t>();
  for (png_uint_32 row = 0; row < height; ++row) png_write_row(png, data + static_cast<std::size_t>(row) * width * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
}

at::Tensor ReadPng(const std::string& path, std::int64_t max_pixels) {
  const auto bytes = ReadBoundedFile(path, "PNG image", std::uintmax_t{64} << 20);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    Fail(ErrorCode::kInvalidArgument, "'{}' is not a PNG ({})", path, image.message);
  }
  if (std::int64_t{image.width} * image.height > max_pixels) {
    png_image_free(&image);
    Fail(ErrorCode::kInvalidArgument, "'{}' is {}×{} pixels; the limit is {}", path, image.width, image.height,
         max_pixels);
  }
  image.format = PNG_FORMAT_RGB;
  auto rgb = torch::empty({image.height, image.width, 3}, torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, rgb.data_ptr<std::uint8_t>(), 0, nullptr)) {
    Fail(ErrorCode::kInvalidArgument, "'{}' does not decode ({})", path, image.message);
  }
  return rgb;
}

}  // namespace vidgen::tools
