// The Wan DiT against the official model's outputs (golden wan_dit_* cases).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/io/weight_store.h"
#include "models/wan/dit.h"
#include "tests/support/golden.h"

namespace vidgen::wan {
namespace {

WanDit LoadGoldenDit(const testing::GoldenCase& golden) {
  const auto dir = golden.CheckpointDir();
  WanDit dit(ReadWanDitConfig((dir / "config.json").string()));
  io::WeightStore store;
  store.AddFile((dir / "diffusion_pytorch_model.safetensors").string());
  io::WeightStore::LoadOptions options;
  options.device = testing::TestDevice();
  store.LoadInto(*dit, options);
  dit->eval();
  return dit;
}

class WanDitGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanDitGoldenTest, MatchesTheReference) {
  torch::NoGradGuard no_grad;
  const testing::GoldenCase golden(GetParam());
  auto dit = LoadGoldenDit(golden);

  std::map<std::string, torch::Tensor> traced;
  dit->trace = [&](const std::string& name, const torch::Tensor& x) { traced[name] = x.clone(); };
  WanDitInput input;
  input.x = {golden.Input("x")};
  input.timesteps = golden.Input("t");
  input.context = {golden.Input("context")};
  input.seq_len = std::stoll(golden.Meta("seq_len"));
  const auto out = dit->forward(input);
  EXPECT_TRUE(testing::TensorsClose(out[0], golden.Get("out")));
  for (std::int64_t n = 0; golden.Has("debug.block" + std::to_string(n)); ++n) {
    const std::string name = "block" + std::to_string(n);
    ASSERT_TRUE(traced.contains(name)) << name;
    EXPECT_TRUE(testing::TensorsClose(traced[name][0], golden.Get("debug." + name))) << name;
  }

  // Two samples in one call: different timesteps and text lengths.
  dit->trace = nullptr;
  WanDitInput batch;
  batch.x = {golden.Input("x"), golden.Input("batch.x1")};
  batch.timesteps = golden.Input("batch.t");
  batch.context = {golden.Input("context"), golden.Input("batch.context1")};
  batch.seq_len = input.seq_len;
  const auto outs = dit->forward(batch);
  EXPECT_TRUE(testing::TensorsClose(outs[0], golden.Get("batch.out0")));
  EXPECT_TRUE(testing::TensorsClose(outs[1], golden.Get("batch.out1")));
}

INSTANTIATE_TEST_SUITE_P(Golden, WanDitGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_dit")));

}  // namespace
}  // namespace vidgen::wan
