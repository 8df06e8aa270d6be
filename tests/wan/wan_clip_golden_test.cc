// Wan's CLIP image encoder against the official code (golden wan_clip_* cases): preprocessing, the pre-norm, every
// block that runs, the features.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "models/encoders/clip_vision.h"
#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"
#include "tests/support/golden.h"
#include "tests/support/scratch_dir.h"

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

// The same tower saved as the diffusers layout's image_encoder/ (transformers' CLIPVisionModel: q, k and v apart)
// gives the same features.
TEST_P(WanClipGoldenTest, DiffusersImageEncoderGivesTheSameFeatures) {
  const testing::GoldenCase golden(GetParam());
  const auto dir = golden.CheckpointDir();
  io::WeightStore released;
  released.AddFile((dir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth").string());
  released.SelectPrefix("visual.");
  static const io::KeyMap names = io::KeyTable(R"(
      patch_embedding   embeddings.patch_embedding
      pre_norm          pre_layrnorm
      post_norm         post_layernorm
      transformer.      encoder.layers.
      .norm1            .layer_norm1
      .norm2            .layer_norm2
      .attn.proj        .self_attn.out_proj
      .mlp.0            .mlp.fc1
      .mlp.2            .mlp.fc2
  )");
  io::NamedTensors tensors = {{"vision_model.embeddings.position_ids", torch::arange(1)}};
  for (const auto& name : released.Names()) {
    const auto& tensor = released.Get(name);
    const std::string renamed = "vision_model." + io::ApplyKeyMap(names, name);
    if (name == "cls_embedding") {
      tensors.emplace_back("vision_model.embeddings.class_embedding", tensor.flatten());
    } else if (name == "pos_embedding") {
      tensors.emplace_back("vision_model.embeddings.position_embedding.weight", tensor[0]);
    } else if (const auto at = renamed.find(".attn.to_qkv."); at != std::string::npos) {
      const auto parts = tensor.chunk(3);
      const auto layer = renamed.substr(0, at), kind = renamed.substr(at + std::string_view(".attn.to_qkv.").size());
      for (int i = 0; i < 3; ++i) {
        tensors.emplace_back(fmt::format("{}.self_attn.{}_proj.{}", layer, "qkv"[i], kind), parts[i].contiguous());
      }
    } else if (name != "head") {
      tensors.emplace_back(renamed, tensor);
    }
  }
  testing::ScratchDir scratch;
  io::WriteSafetensors((scratch.path() / "model.safetensors").string(), tensors);
  std::ifstream clip_config(dir / "clip_config.json");
  const auto heads = nlohmann::json::parse(clip_config).at("vision_heads").get<int>();
  std::ofstream(scratch.path() / "config.json")
      << nlohmann::json{{"num_attention_heads", heads}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-5}}.dump();

  auto clip = LoadDiffusersClipVisionEncoder(scratch.path().string(), torch::kFloat, testing::TestDevice());
  EXPECT_TRUE(testing::TensorsClose(clip->Forward(golden.Input("pixel_values")), golden.Get("features")));

  std::ofstream(scratch.path() / "config.json")
      << nlohmann::json{{"num_attention_heads", heads}, {"hidden_act", "quick_gelu"}}.dump();
  EXPECT_THROW(LoadDiffusersClipVisionEncoder(scratch.path().string(), torch::kFloat, testing::TestDevice()), Error);
}

INSTANTIATE_TEST_SUITE_P(Golden, WanClipGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_clip")));

}  // namespace
}  // namespace vidgen::encoders
