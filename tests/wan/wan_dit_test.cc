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

// Fused q/k/v projections give the three products' result, follow their parameters' in-place changes (a LoRA
// merge's), and end rather than go stale when a parameter gets new storage.
TEST(WanDitTest, FusedProjectionsFollowTheirParameters) {
  torch::NoGradGuard no_grad;
  const testing::GoldenCase golden(testing::GoldenCases("wan_dit").front());
  auto separate = LoadGoldenDit(golden), fused = LoadGoldenDit(golden);
  fused->FuseProjections(testing::TestDevice());
  auto attention = [](WanDit& dit) -> WanSelfAttentionImpl& { return *dit->blocks[0]->as<WanBlock>()->self_attn; };
  ASSERT_TRUE(attention(fused).fused());
  EXPECT_FALSE(attention(separate).fused());
  EXPECT_TRUE(attention(fused).k->weight.is_alias_of(attention(fused).qkv_weight));
  EXPECT_TRUE(fused->named_parameters().contains("blocks.0.self_attn.v.bias"));

  WanDitInput input;
  input.x = {golden.Input("x")};
  input.timesteps = golden.Input("t");
  input.context = {golden.Input("context")};
  input.seq_len = std::stoll(golden.Meta("seq_len"));
  {
    torch::AutoGradMode training(true);  // autograd needs the parameters themselves: the three products
    fused->forward(input)[0].sum().backward();
    EXPECT_TRUE(attention(fused).k->weight.grad().defined());
    fused->zero_grad();
  }
  auto expect_same = [&](const char* when) {
    const auto a = fused->forward(input)[0], b = separate->forward(input)[0];
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << when << ": " << (a - b).abs().max().item<double>();
    return a;
  };
  const auto before = expect_same("as loaded");
  EXPECT_TRUE(testing::TensorsClose(before, golden.Get("out")));
  for (auto* dit : {&separate, &fused}) attention(*dit).k->weight.add_(0.05);
  EXPECT_FALSE(torch::allclose(expect_same("after an in-place change"), before, 1e-4, 1e-4));
  ASSERT_TRUE(attention(fused).fused());
  for (auto* dit : {&separate, &fused}) attention(*dit).v->weight.set_data(attention(*dit).v->weight * 1.5);
  EXPECT_FALSE(attention(fused).fused());
  expect_same("after new storage");
}

INSTANTIATE_TEST_SUITE_P(Golden, WanDitGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_dit")));

}  // namespace
}  // namespace vidgen::wan
