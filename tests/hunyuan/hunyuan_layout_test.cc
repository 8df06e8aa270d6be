// HunyuanVideo beyond the golden cases: the diffusers layout, the cache, bad inputs.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/hunyuan/loader.h"
#include "models/dit/denoise.h"
#include "models/io/tensor_file.h"
#include "tests/support/golden.h"
#include "tests/support/expect_error.h"

namespace vidgen::hunyuan {
namespace {

std::string GoldenCheckpoint() {
  const auto cases = testing::GoldenCases("hunyuan_dit");
  if (cases.empty()) return "";
  return testing::GoldenCase(cases.front()).CheckpointDir().string();
}

// The released state written out under diffusers' names (models.md D.9), as its conversion script would.
io::NamedTensors ToDiffusers(HunyuanDit& dit) {
  const auto& config = dit->config();
  io::NamedTensors out;
  auto put = [&](const std::string& name, const at::Tensor& t) { out.emplace_back(name, t.detach().clone()); };
  for (const auto& item : dit->named_parameters()) {
    std::string name = item.key();
    const auto& t = item.value();
    auto rename = [&](const std::string& from, const std::string& to) {
      if (name.starts_with(from)) name = to + name.substr(from.size());
    };
    auto split = [&](const std::vector<std::string>& names, const std::vector<std::int64_t>& sizes) {
      const auto parts = t.split_with_sizes(sizes, 0);
      const std::string kind = name.substr(name.rfind('.'));
      for (std::size_t i = 0; i < names.size(); ++i) put(names[i] + kind, parts[i]);
    };
    const std::int64_t d = config.hidden_size;
    if (name.starts_with("double_blocks.")) {
      const auto dot = name.find('.', 14);
      const std::string in = "transformer_blocks." + name.substr(14, dot - 14) + ".", rest = name.substr(dot + 1);
      if (rest.starts_with("img_attn_qkv.")) {
        split({in + "attn.to_q", in + "attn.to_k", in + "attn.to_v"}, {d, d, d});
        continue;
      }
      if (rest.starts_with("txt_attn_qkv.")) {
        split({in + "attn.add_q_proj", in + "attn.add_k_proj", in + "attn.add_v_proj"}, {d, d, d});
        continue;
      }
      const std::vector<std::pair<std::string, std::string>> names = {
          {"img_mod.linear.", "norm1.linear."},        {"txt_mod.linear.", "norm1_context.linear."},
          {"img_attn_q_norm.", "attn.norm_q."},         {"img_attn_k_norm.", "attn.norm_k."},
          {"txt_attn_q_norm.", "attn.norm_added_q."},   {"txt_attn_k_norm.", "attn.norm_added_k."},
          {"img_attn_proj.", "attn.to_out.0."},         {"txt_attn_proj.", "attn.to_add_out."},
          {"img_mlp.fc1.", "ff.net.0.proj."},           {"img_mlp.fc2.", "ff.net.2."},
          {"txt_mlp.fc1.", "ff_context.net.0.proj."},   {"txt_mlp.fc2.", "ff_context.net.2."}};
      for (const auto& [from, to] : names) {
        if (rest.starts_with(from)) put(in + to + rest.substr(from.size()), t);
      }
      continue;
    }
    if (name.starts_with("single_blocks.")) {
      const auto dot = name.find('.', 14);
      const std::string in = "single_transformer_blocks." + name.substr(14, dot - 14) + ".",
                        rest = name.substr(dot + 1);
      if (rest.starts_with("linear1.")) {
        split({in + "attn.to_q", in + "attn.to_k", in + "attn.to_v", in + "proj_mlp"},
              {d, d, d, config.mlp_hidden()});
        continue;
      }
      for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
               {"q_norm.", "attn.norm_q."}, {"k_norm.", "attn.norm_k."}, {"linear2.", "proj_out."},
               {"modulation.linear.", "norm.linear."}}) {
        if (rest.starts_with(from)) put(in + to + rest.substr(from.size()), t);
      }
      continue;
    }
    if (name.starts_with("txt_in.individual_token_refiner.blocks.")) {
      const std::size_t at = std::string("txt_in.individual_token_refiner.blocks.").size();
      const auto dot = name.find('.', at);
      const std::string in = "context_embedder.token_refiner.refiner_blocks." + name.substr(at, dot - at) + ".",
                        rest = name.substr(dot + 1);
      if (rest.starts_with("self_attn_qkv.")) {
        split({in + "attn.to_q", in + "attn.to_k", in + "attn.to_v"}, {d, d, d});
        continue;
      }
      for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
               {"self_attn_proj.", "attn.to_out.0."}, {"mlp.fc1.", "ff.net.0.proj."}, {"mlp.fc2.", "ff.net.2."},
               {"adaLN_modulation.1.", "norm_out.linear."}, {"norm1.", "norm1."}, {"norm2.", "norm2."}}) {
        if (rest.starts_with(from)) put(in + to + rest.substr(from.size()), t);
      }
      continue;
    }
    if (name.starts_with("final_layer.adaLN_modulation.1.")) {
      const auto halves = t.chunk(2, 0);
      put("norm_out.linear" + name.substr(name.rfind('.')), torch::cat({halves[1], halves[0]}));
      continue;
    }
    rename("img_in.proj.", "x_embedder.proj.");
    rename("time_in.mlp.0.", "time_text_embed.timestep_embedder.linear_1.");
    rename("time_in.mlp.2.", "time_text_embed.timestep_embedder.linear_2.");
    rename("guidance_in.mlp.0.", "time_text_embed.guidance_embedder.linear_1.");
    rename("guidance_in.mlp.2.", "time_text_embed.guidance_embedder.linear_2.");
    rename("vector_in.in_layer.", "time_text_embed.text_embedder.linear_1.");
    rename("vector_in.out_layer.", "time_text_embed.text_embedder.linear_2.");
    rename("txt_in.input_embedder.", "context_embedder.proj_in.");
    rename("txt_in.t_embedder.mlp.0.", "context_embedder.time_text_embed.timestep_embedder.linear_1.");
    rename("txt_in.t_embedder.mlp.2.", "context_embedder.time_text_embed.timestep_embedder.linear_2.");
    rename("txt_in.c_embedder.linear_1.", "context_embedder.time_text_embed.text_embedder.linear_1.");
    rename("txt_in.c_embedder.linear_2.", "context_embedder.time_text_embed.text_embedder.linear_2.");
    rename("final_layer.linear.", "proj_out.");
    put(name, t);
  }
  return out;
}

HunyuanText SampleText(const HunyuanDitConfig& config, std::int64_t length, std::int64_t valid) {
  auto mask = torch::zeros({length}, torch::kLong);
  mask.slice(0, 0, valid).fill_(1);
  return {torch::randn({length, config.text_states_dim}), mask, torch::randn({config.text_states_dim_2})};
}

TEST(HunyuanLayoutTest, TheDiffusersLayoutGivesTheSameModel) {
  const auto checkpoint = GoldenCheckpoint();
  if (checkpoint.empty()) GTEST_SKIP() << "no hunyuan golden case";
  torch::NoGradGuard no_grad;
  auto released = LoadHunyuanDit(checkpoint);
  const auto dir = std::filesystem::temp_directory_path() / ("vidgen-hunyuan-diffusers-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "transformer");
  io::WriteSafetensors((dir / "transformer" / "diffusion_pytorch_model.safetensors").string(), ToDiffusers(released));
  const auto& c = released->config();
  std::ofstream(dir / "transformer" / "config.json") << nlohmann::json{
      {"num_attention_heads", c.heads_num}, {"attention_head_dim", c.head_dim()}, {"num_layers", c.double_blocks},
      {"num_single_layers", c.single_blocks}, {"num_refiner_layers", c.refiner_blocks},
      {"mlp_ratio", c.mlp_width_ratio}, {"patch_size", c.patch_size[1]}, {"patch_size_t", c.patch_size[0]},
      {"rope_theta", c.rope_theta}, {"rope_axes_dim", c.rope_dim_list}, {"text_embed_dim", c.text_states_dim},
      {"pooled_projection_dim", c.text_states_dim_2}, {"guidance_embeds", c.guidance_embed},
      {"in_channels", c.in_channels}, {"out_channels", c.out_channels}}.dump(2);
  auto diffusers = LoadHunyuanDit(dir.string());
  std::filesystem::remove_all(dir);

  torch::manual_seed(3);
  const auto& config = released->config();
  const auto x = torch::randn({1, config.in_channels, 2, 4, 6});
  const auto text = SampleText(config, 9, 5);
  const auto t = torch::tensor({700.0f}), g = torch::tensor({6000.0f});
  const auto a = released->forward(x, t, text.states.unsqueeze(0), text.mask.unsqueeze(0), text.pooled.unsqueeze(0), g);
  const auto b = diffusers->forward(x, t, text.states.unsqueeze(0), text.mask.unsqueeze(0), text.pooled.unsqueeze(0), g);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(HunyuanCacheTest, IntervalOneIsTheUncachedRunAndForecastsStayClose) {
  const auto checkpoint = GoldenCheckpoint();
  if (checkpoint.empty()) GTEST_SKIP() << "no hunyuan golden case";
  auto dit = LoadHunyuanDit(checkpoint);
  torch::manual_seed(5);
  const auto& config = dit->config();
  const auto noise = torch::randn({config.in_channels, 3, 8, 8});
  const auto text = SampleText(config, 12, 7);
  dit::SamplerOptions options;
  options.schedule = {schedulers::Solver::kEuler, 12, 7.0, /*integer_timesteps=*/false};
  const auto denoiser = MakeDenoiser(dit, text, 6.0);
  const auto uncached = dit::Denoise(*denoiser, dit->space(), noise, options);

  options.cache = cache::Preset("taylorseer-hunyuan");
  options.cache.interval = 1;
  GenerationStats every;
  EXPECT_TRUE(torch::equal(dit::Denoise(*denoiser, dit->space(), noise, options, {}, nullptr, &every), uncached));
  EXPECT_EQ(every.predicted_steps, 0);

  for (const auto* preset : {"taylorseer-hunyuan", "lite"}) {
    options.cache = cache::Preset(preset);
    GenerationStats stats;
    const auto cached = dit::Denoise(*denoiser, dit->space(), noise, options, {}, nullptr, &stats);
    EXPECT_GT(stats.predicted_steps, 0) << preset;
    EXPECT_EQ(stats.full_steps + stats.predicted_steps, 12) << preset;
    const double relative = ((cached - uncached).norm() / uncached.norm()).item<double>();
    EXPECT_LT(relative, 0.2) << preset;
    EXPECT_FALSE(torch::equal(cached, uncached)) << preset;
  }
}

TEST(HunyuanLayoutTest, BadInputsAreClearErrors) {
  const auto checkpoint = GoldenCheckpoint();
  if (checkpoint.empty()) GTEST_SKIP() << "no hunyuan golden case";
  auto dit = LoadHunyuanDit(checkpoint);
  const auto& config = dit->config();
  auto text = SampleText(config, 6, 3);
  text.mask = torch::tensor({1, 0, 1, 0, 0, 0});  // not a prefix
  dit::SamplerOptions options;
  options.schedule = {schedulers::Solver::kEuler, 2, 7.0, /*integer_timesteps=*/false};
  try {
    dit::Denoise(*MakeDenoiser(dit, text, 6.0), dit->space(), torch::randn({config.in_channels, 1, 4, 4}), options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("prefix"), std::string::npos);
  }
  EXPECT_FAILS(dit->space().GridOf(torch::randn({config.in_channels, 1, 3, 4})), kInvalidArgument, "divisible by the patch 1×2×2");  // odd height
  EXPECT_FAILS(LoadHunyuanDit("/nonexistent/hunyuan"), kNotFound, "/nonexistent/hunyuan");
}

}  // namespace
}  // namespace vidgen::hunyuan

namespace vidgen::hunyuan {
namespace {

TEST(HunyuanLayoutTest, Bf16StaysCloseToFp32) {
  const auto cases = testing::GoldenCases("hunyuan_dit");
  if (cases.empty()) GTEST_SKIP() << "no hunyuan golden case";
  torch::NoGradGuard no_grad;
  const testing::GoldenCase golden(cases.front());
  auto run = [&](c10::ScalarType dtype) {
    auto dit = LoadHunyuanDit(golden.CheckpointDir().string(), dtype);
    return dit->forward(golden.Get("x").unsqueeze(0), golden.Get("t"), golden.Get("text_states").unsqueeze(0),
                        golden.Get("text_mask").unsqueeze(0), golden.Get("text_states_2").unsqueeze(0),
                        golden.Get("guidance"));
  };
  const auto fp32 = run(torch::kFloat), bf16 = run(torch::kBFloat16);
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat);
  const double error = ((bf16 - fp32).abs().max() / fp32.abs().max()).item<double>();
  EXPECT_LT(error, 0.03);
  EXPECT_GT(error, 0.0);  // it did run in bf16
}

}  // namespace
}  // namespace vidgen::hunyuan
