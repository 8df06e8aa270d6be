// The HunyuanVideo DiT against the official model's outputs (golden hunyuan_dit_* cases), and its diffusers layout.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/hunyuan/loader.h"
#include "tests/support/golden.h"

namespace vidgen::hunyuan {
namespace {

class HunyuanDitGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HunyuanDitGoldenTest, MatchesTheReference) {
  torch::NoGradGuard no_grad;
  const testing::GoldenCase golden(GetParam());
  auto dit = LoadHunyuanDit(golden.CheckpointDir().string(), torch::kFloat, testing::TestDevice());

  // The RoPE tables of the token grid.
  const auto grid = dit->space().GridOf(golden.Get("x"));
  const auto [cos, sin] = dit->RopeTables(grid);
  EXPECT_TRUE(testing::TensorsClose(cos, golden.Get("freqs_cos")));
  EXPECT_TRUE(testing::TensorsClose(sin, golden.Get("freqs_sin")));

  std::map<std::string, torch::Tensor> traced;
  dit->trace = [&](const std::string& name, const torch::Tensor& x) { traced[name] = x.clone(); };
  const auto out = dit->forward(golden.Input("x").unsqueeze(0), golden.Input("t"),
                                golden.Input("text_states").unsqueeze(0), golden.Input("text_mask").unsqueeze(0),
                                golden.Input("text_states_2").unsqueeze(0), golden.Input("guidance"));
  EXPECT_TRUE(testing::TensorsClose(out[0], golden.Get("out")));
  int compared = 0;
  for (const auto& [name, value] : traced) {
    if (!golden.Has("debug." + name)) continue;
    EXPECT_TRUE(testing::TensorsClose(value[0], golden.Get("debug." + name))) << name;
    ++compared;
  }
  EXPECT_GE(compared, 2);

  // Two samples in one call: different timesteps, guidance and text lengths.
  dit->trace = nullptr;
  const auto outs = dit->forward(golden.Input("batch.x"), golden.Input("batch.t"), golden.Input("batch.text_states"),
                                 golden.Input("batch.text_mask"), golden.Input("batch.text_states_2"),
                                 golden.Input("batch.guidance"));
  EXPECT_TRUE(testing::TensorsClose(outs, golden.Get("batch.out")));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanDitGoldenTest, ::testing::ValuesIn(testing::GoldenCases("hunyuan_dit")));

}  // namespace
}  // namespace vidgen::hunyuan

namespace vidgen::hunyuan {
namespace {

class HunyuanRunGoldenTest : public ::testing::TestWithParam<std::string> {};

// The whole Euler run, step by step.
TEST_P(HunyuanRunGoldenTest, MatchesTheReferenceStepByStep) {
  const testing::GoldenCase golden(GetParam());
  auto dit = LoadHunyuanDit(golden.CheckpointDir().string());
  dit::SamplerOptions options;
  options.schedule = {schedulers::Solver::kEuler, std::stoi(golden.Meta("steps")), std::stod(golden.Meta("shift")),
                      /*integer_timesteps=*/false};
  const HunyuanText text{golden.Get("text_states"), golden.Get("text_mask"), golden.Get("text_states_2")};
  const auto denoiser = MakeDenoiser(dit, text, std::stod(golden.Meta("embedded_guidance_scale")));
  int steps = 0;
  const auto latents =
      dit::Denoise(*denoiser, dit->space(), golden.Get("noise"), options, {}, [&](const dit::ObservedStep& s) {
        EXPECT_TRUE(testing::TensorsClose(s.latents, golden.Get("step" + std::to_string(s.step) + ".latents"), 1e-3))
            << "step " << s.step;
        ++steps;
      });
  EXPECT_EQ(steps, options.schedule.steps);
  EXPECT_TRUE(testing::TensorsClose(latents, golden.Get("latents"), 1e-3));
  // The schedule itself.
  const auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  EXPECT_TRUE(testing::TensorsClose(torch::tensor(scheduler->sigmas()).to(torch::kFloat), golden.Get("sigmas")));
  EXPECT_TRUE(testing::TensorsClose(torch::tensor(scheduler->timesteps()).to(torch::kFloat), golden.Get("timesteps")));
}

INSTANTIATE_TEST_SUITE_P(Golden, HunyuanRunGoldenTest, ::testing::ValuesIn(testing::GoldenCases("hunyuan_t2v")));

TEST(HunyuanGuidanceTest, TheEmbeddedGuidanceRoundsAsTheReference) {
  EXPECT_EQ(EmbeddedGuidanceValue(6.0, torch::kFloat), 6000.0);
  EXPECT_EQ(EmbeddedGuidanceValue(6.0, torch::kBFloat16), 6016.0);
}

}  // namespace
}  // namespace vidgen::hunyuan
