// Training the Wan architecture with our modules: autograd reaches the DiT and the text encoder, a few steps on a
// micro configuration lower the flow-matching loss, and a seed fixes the whole run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/demo/train.h"

namespace vidgen::demo {
namespace {

struct Micro {
  wan::WanDit dit{nullptr};
  wan::UmT5Encoder t5{nullptr};
  FlowMatchingBatch batch;
};

Micro MakeMicro() {
  torch::manual_seed(0);
  wan::WanDitConfig dit;
  dit.in_dim = dit.out_dim = 4;
  dit.dim = 32;
  dit.ffn_dim = 64;
  dit.freq_dim = 32;
  dit.text_dim = 16;
  dit.num_heads = 2;
  dit.num_layers = 2;
  dit.text_len = 8;
  wan::UmT5Config t5;
  t5.vocab = 40;
  t5.dim = t5.dim_attn = 16;
  t5.dim_ffn = 32;
  t5.num_heads = 2;
  t5.num_layers = 1;
  t5.num_buckets = 8;
  t5.max_distance = 16;
  Micro micro{wan::WanDit(dit), wan::UmT5Encoder(t5), {}};
  micro.batch.latents = torch::randn({2, 4, 2, 4, 4});
  micro.batch.text.ids = torch::randint(1, 40, {2, 8}, torch::kLong);
  micro.batch.text.mask = torch::tensor({{1, 1, 1, 1, 1, 0, 0, 0}, {1, 1, 1, 0, 0, 0, 0, 0}}, torch::kLong);
  return micro;
}

std::vector<at::Tensor> Parameters(Micro& micro) {
  auto parameters = micro.dit->parameters();
  const auto t5 = micro.t5->parameters();
  parameters.insert(parameters.end(), t5.begin(), t5.end());
  return parameters;
}

// The loss at fixed noise levels and noise, averaged: what the steps are judged by.
double FixedLoss(Micro& micro) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(123);
  double total = 0;
  for (int i = 0; i < 4; ++i) {
    const auto sigmas = SampleSigmas(2, 5.0, generator);
    const auto noise = torch::randn(micro.batch.latents.sizes(), generator, torch::kFloat);
    total += FlowMatchingLoss(micro.dit, micro.t5, micro.batch, sigmas, noise).item<double>();
  }
  return total / 4;
}

std::vector<double> Train(Micro& micro, int steps, std::uint64_t seed) {
  torch::optim::Adam optimizer(Parameters(micro), torch::optim::AdamOptions(3e-3));
  auto generator = at::detail::createCPUGenerator(seed);
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    losses.push_back(FlowMatchingStep(micro.dit, micro.t5, micro.batch, optimizer, 5.0, generator));
  }
  return losses;
}

TEST(DemoTrainTest, AFewStepsLowerTheLoss) {
  torch::set_num_threads(1);
  auto micro = MakeMicro();
  const double before = FixedLoss(micro);
  Train(micro, 40, 7);
  const double after = FixedLoss(micro);
  EXPECT_LT(after, 0.8 * before) << "before " << before << ", after " << after;
}

TEST(DemoTrainTest, GradientsReachTheTextEncoder) {
  auto micro = MakeMicro();
  auto generator = at::detail::createCPUGenerator(1);
  const auto loss = FlowMatchingLoss(micro.dit, micro.t5, micro.batch, SampleSigmas(2, 5.0, generator),
                                     torch::randn(micro.batch.latents.sizes()));
  loss.backward();
  EXPECT_GT(micro.t5->token_embedding->weight.grad().abs().sum().item<double>(), 0.0);
  for (const auto& parameter : micro.dit->named_parameters()) {
    if (!parameter.value().grad().defined()) ADD_FAILURE() << parameter.key() << " got no gradient";
  }
}

TEST(DemoTrainTest, ASeedFixesTheRun) {
  torch::set_num_threads(1);
  auto a = MakeMicro();
  auto b = MakeMicro();
  EXPECT_EQ(Train(a, 5, 3), Train(b, 5, 3));
}

TEST(DemoTrainTest, NoiseLevelsFollowTheShift) {
  auto generator = at::detail::createCPUGenerator(5);
  const auto shifted = SampleSigmas(4000, 5.0, generator), plain = SampleSigmas(4000, 1.0, generator);
  EXPECT_GT(shifted.min().item<double>(), 0.0);
  EXPECT_LT(shifted.max().item<double>(), 1.0);
  EXPECT_NEAR(plain.mean().item<double>(), 0.5, 0.03);
  EXPECT_GT(shifted.mean().item<double>(), 0.7);  // shift 5 spends most training on the noisy end
}

}  // namespace
}  // namespace vidgen::demo

#include "models/demo/world.h"

namespace vidgen::demo {
namespace {

TEST(DemoTrainTest, TheVaeLearnsToReconstructRenderedClips) {
  torch::set_num_threads(1);
  torch::manual_seed(0);
  wan::WanVaeConfig config;
  config.dim = 4;
  config.num_res_blocks = 1;
  wan::WanVae vae(config);
  // Two rendered clips, 5 frames of 16×16, in [−1, 1] as the VAE takes them.
  RenderOptions options;
  options.frames = 5;
  options.size = 16;
  std::vector<at::Tensor> clips;
  for (const auto& spec : {ClipSpec{Shape::kSquare, 0, Direction::kRight, 1, false},
                           ClipSpec{Shape::kCircle, 3, Direction::kUp, 0, true}}) {
    clips.push_back(Render(spec, 1, options).permute({3, 0, 1, 2}).to(torch::kFloat).div(127.5).sub(1));
  }
  const auto video = torch::stack(clips);
  auto generator = at::detail::createCPUGenerator(3);
  torch::optim::Adam optimizer(vae->parameters(), torch::optim::AdamOptions(3e-3));
  const auto first = VaeStep(vae, video, 1e-4, optimizer, generator);
  VaeLosses last;
  for (int i = 0; i < 40; ++i) last = VaeStep(vae, video, 1e-4, optimizer, generator);
  EXPECT_LT(last.reconstruction, 0.5 * first.reconstruction)
      << "reconstruction " << first.reconstruction << " -> " << last.reconstruction;
  EXPECT_GT(last.kl, 0.0);
  // The trained encoder's latents have the shape the DiT takes.
  torch::NoGradGuard no_grad;
  EXPECT_EQ(vae->Encode(video).sizes(), (std::vector<std::int64_t>{2, 16, 2, 2, 2}));
}

}  // namespace
}  // namespace vidgen::demo
