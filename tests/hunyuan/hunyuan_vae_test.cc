// HunyuanVideo's causal VAE (no golden exists for it): the released key names, shapes, causality in time, tiling.
#include <cmath>
#include <limits>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/hunyuan/vae.h"
#include "models/io/tensor_file.h"
#include "tests/support/expect_error.h"

namespace vidgen::hunyuan {
namespace {

HunyuanVaeConfig TinyConfig() {
  HunyuanVaeConfig config;
  config.block_out_channels = {8, 8, 16, 16};
  config.norm_num_groups = 4;
  config.layers_per_block = 1;
  return config;
}

HunyuanVae TinyVae(const HunyuanVaeConfig& config = TinyConfig()) {
  torch::manual_seed(0);
  HunyuanVae vae(config);
  vae->eval();
  return vae;
}

TEST(HunyuanVaeTest, ParametersHaveTheReleasedNames) {
  HunyuanVaeConfig config;  // the released sizes: 248 tensors
  HunyuanVae vae(config);
  std::set<std::string> names;
  for (const auto& item : vae->named_parameters()) names.insert(item.key());
  EXPECT_EQ(names.size(), 248u);
  for (const char* name : {"encoder.conv_in.conv.weight", "encoder.down_blocks.0.resnets.0.norm1.weight",
                           "encoder.down_blocks.1.resnets.0.conv_shortcut.conv.weight",
                           "encoder.down_blocks.2.downsamplers.0.conv.conv.bias",
                           "encoder.mid_block.attentions.0.group_norm.weight",
                           "encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid_block.resnets.1.conv2.conv.weight",
                           "encoder.conv_norm_out.weight", "encoder.conv_out.conv.weight", "quant_conv.weight",
                           "post_quant_conv.bias", "decoder.conv_in.conv.weight",
                           "decoder.up_blocks.0.resnets.2.conv1.conv.weight",
                           "decoder.up_blocks.2.upsamplers.0.conv.conv.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.conv.weight",
                           "decoder.conv_out.conv.weight"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
  EXPECT_FALSE(names.count("decoder.up_blocks.3.upsamplers.0.conv.conv.weight"));
  EXPECT_EQ(vae->encoder->conv_out->conv->weight.size(0), 32);  // mean and log-variance of 16 channels
}

TEST(HunyuanVaeTest, CompressesEightInSpaceAndFourInTime) {
  auto vae = TinyVae();
  const auto video = torch::rand({1, 3, 9, 32, 48}) * 2 - 1;
  const auto latents = vae->Encode(video);
  EXPECT_EQ(latents.sizes(), (std::vector<std::int64_t>{1, 16, 3, 4, 6}));
  const auto decoded = vae->Decode(latents);
  EXPECT_EQ(decoded.sizes(), video.sizes());
  EXPECT_TRUE(torch::isfinite(decoded).all().item<bool>());
  EXPECT_EQ(vae->Decode(latents.slice(2, 0, 1)).size(2), 1);  // one latent frame is one image
  EXPECT_FAILS(vae->Encode(torch::rand({1, 3, 8, 32, 48})), kInvalidArgument, "cannot encode a video of shape [1, 3, 8, 32, 48]");
  EXPECT_FAILS(vae->Decode(torch::rand({1, 4, 2, 4, 4})), kInvalidArgument, "cannot decode latents of shape [1, 4, 2, 4, 4]");
}

// GroupNorm spans every frame (as in the reference), so the VAE as a whole is not causal; its convolutions and its
// mid-block attention are.
TEST(HunyuanVaeTest, ConvolutionsAndAttentionLookOnlyAtThePast) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  CausalConv conv(4, 5, 3, std::array<std::int64_t, 3>{2, 2, 2});
  const auto x = torch::randn({1, 4, 9, 8, 8});
  auto later = x.clone();
  later.slice(2, 5).add_(1.0);
  // Output frame j reads input frames 2j−2..2j (replicated in front): frames 0..2 read inputs 0..4 only.
  const auto a = conv(x), b = conv(later);
  EXPECT_EQ(a.size(2), 5);
  EXPECT_TRUE(torch::equal(a.slice(2, 0, 3), b.slice(2, 0, 3)));
  EXPECT_FALSE(torch::allclose(a.slice(2, 3), b.slice(2, 3)));
  // Replicate padding: a video constant in time gives the same first and second output frame (stride 1).
  CausalConv same(4, 4, 3);
  const auto still = torch::randn({1, 4, 1, 6, 6}).expand({1, 4, 3, 6, 6}).contiguous();
  const auto out = same(still);
  EXPECT_TRUE(torch::allclose(out.select(2, 0), out.select(2, 2), 1e-5, 1e-5));

  // The mid-block attention against a dense frame-causal mask.
  MidAttention attention(8, 4);
  const auto h = torch::randn({1, 8, 3, 2, 2});
  const auto tokens = attention->group_norm(h.flatten(2)).transpose(1, 2)[0];  // [12, 8]
  const auto q = attention->to_q(tokens), k = attention->to_k(tokens), v = attention->to_v(tokens);
  auto scores = q.matmul(k.t()) / std::sqrt(8.0);
  const auto frame = torch::arange(12).div(4, "floor");
  scores.masked_fill_(frame.view({1, -1}) > frame.view({-1, 1}), -std::numeric_limits<double>::infinity());
  const auto expected = attention->to_out(scores.softmax(-1).matmul(v)).t().reshape({1, 8, 3, 2, 2}) + h;
  EXPECT_TRUE(torch::allclose(attention(h), expected, 1e-5, 1e-5));
}

TEST(HunyuanVaeTest, TilingKeepsTheShapeAndIsExactWithinOneTile) {
  const auto latents = torch::randn({1, 16, 7, 10, 12});
  const HunyuanVaeTiling tiling{.enabled = true, .overlap = 0.25};
  auto config = TinyConfig();  // the released tile sizes: 64 frames, 256 pixels
  const auto whole = TinyVae(config)->Decode(latents);
  EXPECT_TRUE(torch::equal(TinyVae(config)->Decode(latents, tiling), whole));  // fits in one tile
  config.sample_tsize = 16;  // 4 latent frames
  config.sample_size = 32;   // 4 latent rows and columns
  const auto tiled = TinyVae(config)->Decode(latents, tiling);
  EXPECT_EQ(tiled.sizes(), whole.sizes());
  EXPECT_TRUE(torch::isfinite(tiled).all().item<bool>());
  EXPECT_FALSE(torch::equal(tiled, whole));  // tiles see less context, as in the reference
  // The first frames of the first temporal tile, away from the spatial seams' blend, are untouched by tiling in
  // time: frame 0 of a time-tiled decode equals frame 0 of decoding the first tile alone.
  config.sample_size = 256;
  auto vae = TinyVae(config);
  const auto time_tiled = vae->Decode(latents, tiling);
  EXPECT_TRUE(torch::allclose(time_tiled.slice(2, 0, 1), vae->Decode(latents.slice(2, 0, 5)).slice(2, 0, 1)));
}

TEST(HunyuanVaeTest, ResamplesAsTheReferenceBuildsItsBlocks) {
  auto config = TinyConfig();
  config.spatial_compression = 4;  // only the first two of four blocks halve the sides
  auto vae = TinyVae(config);
  const auto latents = vae->Encode(torch::rand({1, 3, 9, 16, 24}) * 2 - 1);
  EXPECT_EQ(latents.sizes(), (std::vector<std::int64_t>{1, 16, 3, 4, 6}));
  EXPECT_EQ(vae->Decode(latents).sizes(), (std::vector<std::int64_t>{1, 3, 9, 16, 24}));
  config.spatial_compression = 32;  // more halvings than blocks
  EXPECT_FAILS(HunyuanVae{config}, kInvalidArgument, "spatial_compression_ratio 32");
  config.spatial_compression = 8;
  config.time_compression = 8;  // the reference builds 4 only
  EXPECT_FAILS(HunyuanVae{config}, kInvalidArgument, "time_compression_ratio 8");
}

// The reference's load_vae takes a plain state dict or one under "state_dict" with "vae." names (other names beside
// them dropped). A nested archive reads as the dotted names written here.
TEST(HunyuanVaeTest, LoadsEveryStateDictFormOfTheReference) {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("vidgen-hunyuan-vae-" + std::to_string(::getpid()));
  fs::create_directories(dir / "plain");
  fs::create_directories(dir / "wrapped");
  const auto config = TinyConfig();
  for (const char* form : {"plain", "wrapped"}) {
    std::ofstream(dir / form / "config.json") << nlohmann::json{{"block_out_channels", config.block_out_channels},
                                                                {"norm_num_groups", config.norm_num_groups},
                                                                {"layers_per_block", config.layers_per_block}}
                                                     .dump();
  }
  auto vae = TinyVae();
  io::NamedTensors plain, wrapped = {{"state_dict.loss.logvar", torch::zeros({1})}};
  for (const auto& item : vae->named_parameters()) {
    plain.emplace_back(item.key(), item.value().detach());
    wrapped.emplace_back("state_dict.vae." + item.key(), item.value().detach());
  }
  io::WriteSafetensors((dir / "plain" / "diffusion_pytorch_model.safetensors").string(), plain);
  io::WriteTorchCheckpoint((dir / "wrapped" / "pytorch_model.pt").string(), wrapped);
  const auto latents = torch::randn({1, 16, 2, 2, 2});
  const auto expected = vae->Decode(latents);
  EXPECT_TRUE(torch::equal(LoadHunyuanVae((dir / "plain").string())->Decode(latents), expected));
  EXPECT_TRUE(torch::equal(LoadHunyuanVae((dir / "wrapped").string())->Decode(latents), expected));
  fs::remove_all(dir / "wrapped" / "pytorch_model.pt");
  EXPECT_FAILS(LoadHunyuanVae((dir / "wrapped").string()), kNotFound, "no VAE weights");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vidgen::hunyuan
