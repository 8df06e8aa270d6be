// Decoding the images jobs bring: PNG of every colour type and JPEG to RGB, and every hostile input refused with a
// message that names the field; and the PNGs a process encodes itself.
#include "media/image_decoder.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "media/image_encoder.h"
#include "tests/support/expect_error.h"
#include "tests/support/scratch_dir.h"

namespace vidgen::media {
namespace {

constexpr std::int64_t kMaxPixels = 4096 * 4096;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class ImageDecoderTest : public ::testing::Test {
 protected:
  // A width × height RGB pattern that no two neighbours share.
  void SetUp() override {
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x) {
        for (int c = 0; c < 3; ++c) pixels_.push_back(static_cast<char>((x * 37 + y * 11 + c * 80) % 256));
      }
    }
    std::ofstream(scratch_.path() / "pixels.rgb", std::ios::binary) << pixels_;
  }

  // The pattern through FFmpeg's own encoder, stored as `pix_fmt`.
  std::string Encode(const std::string& name, const std::string& pix_fmt) {
    const auto out = scratch_.path() / name;
    const auto command =
        fmt::format("ffmpeg -v error -y -f rawvideo -pix_fmt rgb24 -s {}x{} -i '{}' -frames:v 1 -pix_fmt {} '{}'",
                    kWidth, kHeight, (scratch_.path() / "pixels.rgb").string(), pix_fmt, out.string());
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return ReadFile(out);
  }

  static std::string Refusal(std::string_view bytes, std::int64_t max_pixels = kMaxPixels) {
    try {
      DecodeImage(bytes, max_pixels, "spec.image");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_TRUE(std::string_view(e.what()).starts_with("spec.image: ")) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "decoded";
    return "";
  }

  static constexpr int kWidth = 23, kHeight = 13;  // odd sides: no chroma-subsampling shortcut
  testing::ScratchDir scratch_;
  std::string pixels_;
};

TEST_F(ImageDecoderTest, PngOfEveryColourTypeDecodesToItsPixels) {
  for (const char* format : {"rgb24", "rgba", "rgb48be"}) {
    const auto image = DecodeImage(Encode(fmt::format("{}.png", format), format), kMaxPixels, "spec.image");
    ASSERT_EQ(image.width, kWidth) << format;
    ASSERT_EQ(image.height, kHeight) << format;
    EXPECT_EQ(std::string(image.rgb.begin(), image.rgb.end()), pixels_) << format;
  }
  const auto gray = DecodeImage(Encode("gray.png", "gray"), kMaxPixels, "spec.image");
  ASSERT_EQ(gray.rgb.size(), pixels_.size());
  for (std::size_t i = 0; i < gray.rgb.size(); i += 3) {
    EXPECT_TRUE(gray.rgb[i] == gray.rgb[i + 1] && gray.rgb[i] == gray.rgb[i + 2]) << i;
  }
}

TEST_F(ImageDecoderTest, AnEncodedPngDecodesToItsPixels) {
  const std::span pixels(reinterpret_cast<const std::uint8_t*>(pixels_.data()), pixels_.size());
  const auto png = EncodePng(pixels, kWidth, kHeight);
  const auto image = DecodeImage(png, kMaxPixels, "spec.image");
  ASSERT_EQ(image.width, kWidth);
  ASSERT_EQ(image.height, kHeight);
  EXPECT_EQ(std::string(image.rgb.begin(), image.rgb.end()), pixels_);
  EXPECT_FAILS(EncodePng(pixels.first(pixels.size() - 1), kWidth, kHeight), kInvalidArgument,
               fmt::format("{} bytes are not a 23×13 RGB image", pixels_.size() - 1));
}

TEST_F(ImageDecoderTest, JpegDecodesCloseToItsPixels) {
  const auto image = DecodeImage(Encode("image.jpg", "yuvj444p"), kMaxPixels, "spec.image");
  ASSERT_EQ(image.width, kWidth);
  ASSERT_EQ(image.height, kHeight);
  double error = 0;
  for (std::size_t i = 0; i < image.rgb.size(); ++i) {
    error += std::abs(int{image.rgb[i]} - int{static_cast<std::uint8_t>(pixels_[i])});
  }
  EXPECT_LT(error / static_cast<double>(image.rgb.size()), 12.0);  // lossy, but the picture

  // Bytes after EOI (a motion photo's video) do not hide the image.
  const auto appended =
      DecodeImage(Encode("image2.jpg", "yuvj444p") + std::string(1000, '\x42'), kMaxPixels, "spec.image");
  EXPECT_EQ(appended.rgb, image.rgb);
}

TEST_F(ImageDecoderTest, RefusesWhatIsNotAWholeImageWithinTheLimits) {
  const auto png = Encode("image.png", "rgb24");
  const auto jpeg = Encode("image.jpg", "yuvj420p");
  EXPECT_NE(Refusal(png.substr(0, png.size() / 2)).find("truncated"), std::string::npos);
  EXPECT_NE(Refusal(jpeg.substr(0, jpeg.size() - 40)).find("truncated"), std::string::npos);
  EXPECT_NE(Refusal("a text file, not an image\n").find("not a PNG or a JPEG"), std::string::npos);
  EXPECT_NE(Refusal("").find("not a PNG or a JPEG"), std::string::npos);
  EXPECT_NE(Refusal(png, kWidth * kHeight - 1).find("the limit is"), std::string::npos);

  // A corrupt body between a whole header and a whole end: the decoder must not conceal it.
  auto corrupt = png;
  for (std::size_t i = 60; i < corrupt.size() - 20; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  Refusal(corrupt);

  // 20000×20000 declared in a few bytes: refused from the header, before any allocation.
  auto huge = png;
  for (const int at : {16, 20}) {
    huge[at] = 0, huge[at + 1] = 0, huge[at + 2] = static_cast<char>(20000 >> 8),
    huge[at + 3] = static_cast<char>(20000 & 0xff);
  }
  EXPECT_NE(Refusal(huge).find("20000×20000"), std::string::npos);
}

}  // namespace
}  // namespace vidgen::media
