// The Wan-VAE against the reference (golden wan_vae_* cases): chunked encode and per-frame decode.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/io/weight_store.h"
#include "models/wan/vae.h"
#include "tests/support/golden.h"

namespace vidgen::wan {
namespace {

class WanVaeGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanVaeGoldenTest, MatchesTheReference) {
  torch::NoGradGuard no_grad;
  const testing::GoldenCase golden(GetParam());
  io::WeightStore weights;
  weights.AddFile((golden.CheckpointDir() / "Wan2.1_VAE.pth").string());
  WanVae vae(InferWanVaeConfig(weights));
  weights.LoadInto(*vae, {.allow_unexpected = false, .what = "the Wan VAE", .device = testing::TestDevice()});
  const auto latent = vae->Encode(golden.Input("video").unsqueeze(0));
  EXPECT_TRUE(testing::TensorsClose(latent[0], golden.Get("latent")));
  const auto decoded = vae->Decode(golden.Input("latent").unsqueeze(0));
  EXPECT_TRUE(testing::TensorsClose(decoded[0], golden.Get("decoded")));
}

INSTANTIATE_TEST_SUITE_P(Golden, WanVaeGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_vae")));

}  // namespace
}  // namespace vidgen::wan
