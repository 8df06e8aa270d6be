// Wan's CLIP image encoder against the official code (golden wan_clip_* cases): preprocessing, the pre-norm, every
// block that runs, the features.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/encoders/clip_vision.h"
#include "tests/support/golden.h"

namespace vidgen::encoders {
namespace {

class WanClipGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanClipGoldenTest, EncodesImagesAsTheReference) {
  const testing::GoldenCase golden(GetParam());
  const auto file = golden.CheckpointDir() / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth";
  auto clip = LoadClipVisionEncoder(file.string(), torch::kFloat, testing::TestDevice());
  const auto& config = clip->config();
  EXPECT_EQ(config.image_size, std::stoi(golden.Meta("image_size")));
  EXPECT_EQ(config.heads, std::stoi(golden.Meta("heads")));
  EXPECT_EQ(config.layers, std::stoi(golden.Meta("layers_used")));

  // The user's images as the pipeline passes them: to_tensor, then (x - 0.5) / 0.5.
  std::vector<at::Tensor> pixels;
  for (const char* image : {"image0", "image1"}) {
    const auto u8 = golden.Get(std::string(image) + "_u8").permute({2, 0, 1}).to(torch::kFloat) / 255.0;
    EXPECT_TRUE(testing::TensorsClose((u8 - 0.5) / 0.5, golden.Get(image), 1e-6)) << image;
    pixels.push_back(clip->Preprocess(golden.Input(image)));
  }
  const auto pixel_values = torch::stack(pixels);
  EXPECT_TRUE(testing::TensorsClose(pixel_values, golden.Get("pixel_values")));

  int traced = 0;
  clip->trace = [&](const std::string& name, const at::Tensor& value) {
    EXPECT_TRUE(testing::TensorsClose(value, golden.Get("debug." + name))) << name;
    ++traced;
  };
  EXPECT_TRUE(testing::TensorsClose(clip->Forward(golden.Get("pixel_values")), golden.Get("features")));
  EXPECT_EQ(traced, 1 + config.layers);
}

INSTANTIATE_TEST_SUITE_P(Golden, WanClipGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_clip")));

}  // namespace
}  // namespace vidgen::encoders
