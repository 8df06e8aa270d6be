// HunyuanVideo's VAE, text encoders with their tokenizers, and whole pipeline against the reference (golden
// hunyuan_vae_*, hunyuan_llama_*, hunyuan_clip_*, hunyuan_pipeline_* cases). Every case names its checkpoint and the
// part's folder in its metadata; sizes come from the files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/hunyuan/pipeline.h"
#include "tests/support/golden.h"

namespace vidgen::hunyuan {
namespace {

using testing::GoldenCase;
using testing::TensorsClose;

std::vector<std::string> Prompts(const GoldenCase& golden) {
  std::vector<std::string> prompts;
  for (int i = 0; golden.metadata().contains("prompt" + std::to_string(i)); ++i) {
    prompts.push_back(golden.Meta("prompt" + std::to_string(i)));
  }
  return prompts;
}

std::string PartDir(const GoldenCase& golden, const std::string& key) {
  return (golden.CheckpointDir() / golden.Meta(key)).string();
}

class HunyuanVaeGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HunyuanVaeGoldenTest, EncodesAndDecodesAsTheReference) {
  const GoldenCase golden(GetParam());
  auto vae = LoadHunyuanVae(PartDir(golden, "vae"), testing::TestDevice());
  EXPECT_EQ(vae->config().scaling_factor, std::stod(golden.Meta("scaling_factor")));
  EXPECT_EQ(vae->config().spatial_compression, std::stoi(golden.Meta("spatial_compression")));
  const auto video = golden.Input("video").unsqueeze(0);
  const auto [mean, logvar] = vae->Posterior(video);
  EXPECT_TRUE(TensorsClose(mean[0], golden.Get("latent_mean")));
  EXPECT_TRUE(TensorsClose(logvar[0], golden.Get("logvar")));
  EXPECT_TRUE(TensorsClose(vae->Encode(video)[0], golden.Get("latents")));
  EXPECT_TRUE(TensorsClose(vae->Decode(golden.Input("latents").unsqueeze(0))[0], golden.Get("decoded")));

  // Tiled as the reference's enable_tiling, with the tile sizes of the VAE's config.
  const auto tiling = nlohmann::json::parse(golden.Meta("tiling"));
  EXPECT_EQ(vae->config().sample_size, tiling.at("sample_size").get<std::int64_t>());
  EXPECT_EQ(vae->config().sample_tsize, tiling.at("sample_frames").get<std::int64_t>());
  const auto tiled_latents = golden.Input("tiled.latents").unsqueeze(0);
  const auto tiled = vae->Decode(tiled_latents, HunyuanVaeTiling{.enabled = true, .overlap = 0.25});
  EXPECT_TRUE(TensorsClose(tiled[0], golden.Get("tiled.decoded")));
  EXPECT_TRUE(TensorsClose(vae->Decode(tiled_latents)[0], golden.Get("tiled.decoded_untiled")));
  // The tiles are seen: the untiled decode is not the tiled one.
  EXPECT_FALSE(TensorsClose(tiled[0], golden.Get("tiled.decoded_untiled")));

  // A perturbed input is caught.
  EXPECT_FALSE(TensorsClose(vae->Encode(video * 1.01)[0], golden.Get("latents")));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanVaeGoldenTest, ::testing::ValuesIn(testing::GoldenCases("hunyuan_vae")));

class HunyuanLlamaGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HunyuanLlamaGoldenTest, TokenizesAndEncodesAsTheReference) {
  const GoldenCase golden(GetParam());
  const auto dir = PartDir(golden, "text_encoder");
  const text::LlamaTokenizer tokenizer(dir);
  const std::int64_t crop = std::stoi(golden.Meta("crop_start")), text_len = std::stoi(golden.Meta("text_len"));
  EXPECT_EQ(VideoPromptCrop(tokenizer), crop);
  EXPECT_EQ(tokenizer.bos_id(), std::stoi(golden.Meta("bos_id")));
  EXPECT_EQ(tokenizer.pad_id(), std::stoi(golden.Meta("pad_id")));

  std::vector<std::string> texts;
  for (const auto& prompt : Prompts(golden)) texts.push_back(VideoPromptText(prompt));
  ASSERT_EQ(static_cast<std::int64_t>(texts.size()), golden.Get("ids").size(0));
  const auto tokens = tokenizer.Batch(texts, crop + text_len);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto row = static_cast<std::int64_t>(i);
    EXPECT_TRUE(torch::equal(tokens.ids[row], golden.Get("ids")[row].to(torch::kLong)))
        << "prompt " << i << ": " << tokens.ids[row] << " vs " << golden.Get("ids")[row];
  }
  EXPECT_TRUE(torch::equal(tokens.mask, golden.Get("mask").to(torch::kLong)));

  auto encoder = encoders::LoadLlamaEncoder(dir, torch::kFloat, testing::TestDevice());
  const auto skip = std::stoi(golden.Meta("hidden_state_skip_layer"));
  const auto ids = tokens.ids.to(testing::TestDevice()), mask = tokens.mask.to(testing::TestDevice());
  const auto hidden = encoder->HiddenState(ids, mask, skip);
  EXPECT_TRUE(TensorsClose(hidden, golden.Get("debug.hidden_uncropped")));
  EXPECT_TRUE(TensorsClose(hidden.slice(1, crop), golden.Get("hidden")));
  EXPECT_TRUE(torch::equal(tokens.mask.slice(1, crop), golden.Get("hidden_mask").to(torch::kLong)));
  // The layer counts: one layer more is another state.
  EXPECT_FALSE(TensorsClose(encoder->HiddenState(ids, mask, skip - 1), golden.Get("debug.hidden_uncropped")));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanLlamaGoldenTest, ::testing::ValuesIn(testing::GoldenCases("hunyuan_llama")));

class HunyuanClipGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HunyuanClipGoldenTest, TokenizesAndPoolsAsTheReference) {
  const GoldenCase golden(GetParam());
  const auto dir = PartDir(golden, "text_encoder");
  const text::ClipTokenizer tokenizer(dir);
  EXPECT_EQ(tokenizer.eos_id(), std::stoi(golden.Meta("eos_id")));
  const auto prompts = Prompts(golden);
  const auto tokens = tokenizer.Batch(prompts, std::stoi(golden.Meta("max_length")));
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto row = static_cast<std::int64_t>(i);
    EXPECT_TRUE(torch::equal(tokens.ids[row], golden.Get("ids")[row].to(torch::kLong)))
        << "prompt " << i << ": " << tokens.ids[row] << " vs " << golden.Get("ids")[row];
  }
  EXPECT_TRUE(torch::equal(tokens.mask, golden.Get("mask").to(torch::kLong)));

  auto encoder = encoders::LoadClipTextEncoder(dir, torch::kFloat, testing::TestDevice());
  EXPECT_EQ(encoder->config().eos_token_id, std::stoi(golden.Meta("config_eos_token_id")));
  const auto out = encoder->Forward(tokens.ids.to(testing::TestDevice()), tokens.mask.to(testing::TestDevice()));
  EXPECT_TRUE(TensorsClose(out.last_hidden_state, golden.Get("debug.last_hidden_state")));
  EXPECT_TRUE(TensorsClose(out.pooled, golden.Get("pooled")));
  // Pooling at the last position instead is caught.
  EXPECT_FALSE(TensorsClose(out.last_hidden_state.select(1, -1), golden.Get("pooled")));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanClipGoldenTest, ::testing::ValuesIn(testing::GoldenCases("hunyuan_clip")));

class HunyuanPipelineGoldenTest : public ::testing::TestWithParam<std::string> {};

// The reference pipeline's whole run from the prompt: both text encoders, the Euler steps, the tiled decode.
TEST_P(HunyuanPipelineGoldenTest, MatchesTheReferenceFromThePrompt) {
  const GoldenCase golden(GetParam());
  HunyuanLoadOptions options;
  options.dtype = torch::kFloat;
  options.text_len = std::stoi(golden.Meta("text_len"));
  options.clip_len = std::stoi(golden.Meta("clip_len"));
  options.device = testing::TestDevice();
  ASSERT_EQ(golden.Meta("vae_tiling"), "True");
  auto pipeline = HunyuanPipeline::Load(golden.CheckpointDir().string(), options);

  const auto noise = golden.Input("noise");
  const auto [cos, sin] = pipeline->dit()->RopeTables(pipeline->dit()->space().GridOf(noise));
  EXPECT_TRUE(TensorsClose(cos, golden.Get("freqs_cos")));
  EXPECT_TRUE(TensorsClose(sin, golden.Get("freqs_sin")));

  ASSERT_EQ(golden.Meta("solver"), "euler");
  dit::SamplerOptions denoise;
  denoise.schedule = {schedulers::Solver::kEuler, std::stoi(golden.Meta("steps")), std::stod(golden.Meta("shift")),
                      /*integer_timesteps=*/false};
  const double guidance = std::stod(golden.Meta("embedded_guidance_scale"));
  auto& dit = pipeline->dit();
  int steps = 0;
  const auto latents = dit::Denoise(
      *MakeDenoiser(dit, pipeline->EncodeText(golden.Meta("prompt")), guidance), dit->space(), noise, denoise, {},
      [&](const dit::ObservedStep& s) {
        EXPECT_TRUE(TensorsClose(s.latents, golden.Get("step" + std::to_string(s.step) + ".latents"), 1e-3))
            << "step " << s.step;
        ++steps;
      });
  EXPECT_EQ(steps, denoise.schedule.steps);
  EXPECT_TRUE(TensorsClose(latents, golden.Get("latents"), 1e-3));
  const auto decoded = pipeline->vae()->Decode(latents.unsqueeze(0), options.vae_tiling)[0];
  EXPECT_TRUE(TensorsClose(decoded, golden.Get("decoded"), 1e-3));
  EXPECT_TRUE(TensorsClose((decoded / 2 + 0.5).clamp(0, 1), golden.Get("video"), 1e-3));

  // Another prompt is another run.
  const auto night = MakeDenoiser(dit, pipeline->EncodeText(golden.Meta("prompt") + " at night"), guidance);
  const auto other = dit::Denoise(*night, dit->space(), noise, denoise);
  EXPECT_FALSE(TensorsClose(other, golden.Get("latents"), 1e-3));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanPipelineGoldenTest,
                         ::testing::ValuesIn(testing::GoldenCases("hunyuan_pipeline")));

}  // namespace
}  // namespace vidgen::hunyuan
