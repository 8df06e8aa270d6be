// Training the Wan architecture with our modules: autograd reaches the DiT and the text encoder, a few steps on a
// micro configuration lower the flow-matching loss, and a seed fixes the whole run.

#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/demo/low_rank.h"
#include "models/demo/train.h"
#include "models/demo/trainer.h"
#include "models/demo/world.h"
#include "models/io/tensor_file.h"
#include "models/lora/adapter.h"
#include "models/wan/pipeline.h"
#include "tests/support/scratch_dir.h"

namespace vidgen::demo {
namespace {

struct Micro {
  wan::WanDit dit{nullptr};
  encoders::UmT5Encoder t5{nullptr};
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
  encoders::UmT5Config t5;
  t5.vocab = 40;
  t5.dim = t5.dim_attn = 16;
  t5.dim_ffn = 32;
  t5.num_heads = 2;
  t5.num_layers = 1;
  t5.num_buckets = 8;
  t5.max_distance = 16;
  Micro micro{wan::WanDit(dit), encoders::UmT5Encoder(t5), {}};
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

// LoRA training: only the pairs learn (the base weights stay bit for bit), the loss falls, and the PEFT file it
// writes, read and merged by models/lora like any published adapter, gives the model it trained.
TEST(DemoTrainTest, ALowRankAdapterTrainsAloneAndItsFileMergesToWhatItLearned) {
  torch::set_num_threads(1);
  auto micro = MakeMicro();
  std::vector<at::Tensor> contexts;
  {
    torch::NoGradGuard no_grad;
    const auto hidden = micro.t5->forward(micro.batch.text.ids, micro.batch.text.mask);
    for (std::int64_t b = 0; b < 2; ++b) {
      contexts.push_back(hidden[b].slice(0, 0, micro.batch.text.mask[b].sum().item<std::int64_t>()));
    }
  }
  std::map<std::string, at::Tensor> base;
  for (const auto& item : micro.dit->named_parameters()) base[item.key()] = item.value().clone();
  auto generator = at::detail::createCPUGenerator(9);
  const auto sigmas = SampleSigmas(2, 5.0, generator);
  const auto noise = torch::randn(micro.batch.latents.sizes(), generator, torch::kFloat);
  auto loss = [&] { return FlowMatchingLoss(micro.dit, micro.batch.latents, contexts, sigmas, noise); };

  LowRankAdapters adapters(*micro.dit, {4, 4, 1, [](const std::string& path) { return path.starts_with("blocks."); }});
  EXPECT_EQ(adapters.parameters().size(), 2u * 2 * 10);  // 2 blocks × (4 self, 4 cross, 2 FFN) Linears
  const double before = loss().item<double>();
  torch::optim::Adam optimizer(adapters.parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    adapters.Attach();
    loss().backward();
    optimizer.step();
    adapters.Detach();
  }
  adapters.Attach();
  const auto trained = loss().item<double>();
  adapters.Detach();
  EXPECT_LT(trained, 0.9 * before);
  for (const auto& item : micro.dit->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), base[item.key()])) << item.key() << " moved";
  }

  testing::ScratchDir scratch;
  const auto path = (scratch.path() / "adapter.safetensors").string();
  io::WriteSafetensors(path, adapters.Export());
  const auto adapter = lora::ReadAdapter(path, *micro.dit, {});
  EXPECT_EQ(adapter.updates.size(), 20u);
  const std::vector<std::pair<const lora::Adapter*, double>> set = {{&adapter, 1.0}};
  const lora::AppliedAdapters applied(*micro.dit, set);
  torch::NoGradGuard no_grad;
  EXPECT_NEAR(loss().item<double>(), trained, 1e-5);
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
  {
    // Pixel weights are normalised: uniform weights of any size give the unweighted loss.
    torch::NoGradGuard no_grad;
    auto a = at::detail::createCPUGenerator(5), b = at::detail::createCPUGenerator(5);
    const auto uniform = VaeLoss(vae, video, at::Tensor(), 1e-4, a);
    const auto weighted = VaeLoss(vae, video, torch::full({2, 1, 5, 16, 16}, 7.0), 1e-4, b);
    EXPECT_NEAR(weighted.reconstruction, uniform.reconstruction, 1e-6 * uniform.reconstruction);
  }
  // The object's pixels weighed more, as the trainer does.
  const auto weights = 1 + 10 * (video - video.select(2, 0).select(2, 0).select(2, 0).view({2, 3, 1, 1, 1}))
                                    .abs()
                                    .amax(1, /*keepdim=*/true)
                                    .gt(0.01)
                                    .to(torch::kFloat);
  const auto first = VaeStep(vae, video, weights, 1e-4, optimizer, generator);
  VaeLosses last;
  for (int i = 0; i < 40; ++i) last = VaeStep(vae, video, weights, 1e-4, optimizer, generator);
  EXPECT_LT(last.reconstruction, 0.5 * first.reconstruction)
      << "reconstruction " << first.reconstruction << " -> " << last.reconstruction;
  EXPECT_GT(last.kl, 0.0);
  // The trained encoder's latents have the shape the DiT takes.
  torch::NoGradGuard no_grad;
  EXPECT_EQ(vae->Encode(video).sizes(), (std::vector<std::int64_t>{2, 16, 2, 2, 2}));
}

}  // namespace
}  // namespace vidgen::demo

namespace vidgen::demo {
namespace {

namespace fs = std::filesystem;

TrainOptions MicroTraining(const fs::path& out) {
  TrainOptions options;
  options.out = out.string();
  options.clip.frames = 5;
  options.clip.size = 16;
  options.clips_per_combination = 1;
  options.batch = 2;
  options.vocab_size = 40;
  options.text_len = 64;
  options.vae_dim = 4;
  options.vae_steps = 3;
  options.t5_dim = 16;
  options.t5_layers = 1;
  options.t5_heads = 2;
  options.dit_dim = 32;
  options.dit_layers = 1;
  options.dit_heads = 2;
  options.dit_steps = 3;
  options.checkpoint_every = 2;
  return options;
}

TEST(DemoTrainerTest, WritesAReleasedLayoutThePipelineLoads) {
  torch::set_num_threads(1);
  const auto out = fs::temp_directory_path() / ("vidgen-demo-" + std::to_string(::getpid()));
  std::vector<std::string> stages;
  TrainDemoModel(MicroTraining(out), [&](const TrainProgress& p) {
    if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
  });
  EXPECT_EQ(stages, (std::vector<std::string>{"tokenizer", "vae", "dit", "write"}));
  for (const char* file : {"config.json", "diffusion_pytorch_model.safetensors", "models_t5_umt5-xxl-enc-bf16.pth",
                           "Wan2.1_VAE.pth", "google/umt5-xxl/spiece.model"}) {
    EXPECT_TRUE(fs::exists(out / file)) << file;
  }
  wan::WanLoadOptions load;
  load.dtype = torch::kFloat;
  auto pipeline = wan::WanPipeline::Load(out.string(), load);
  GenerationRequest request;
  request.prompt = "a red circle moving left on a black background";
  request.width = request.height = 16;
  request.frames = 5;
  request.steps = 2;
  EXPECT_EQ(pipeline->Generate(request, {}).frames.sizes(), (std::vector<std::int64_t>{5, 16, 16, 3}));
  fs::remove_all(out);
}

TEST(DemoTrainerTest, AResumedRunEqualsAStraightOne) {
  torch::set_num_threads(1);
  const auto straight = fs::temp_directory_path() / ("vidgen-demo-straight-" + std::to_string(::getpid()));
  const auto resumed = fs::temp_directory_path() / ("vidgen-demo-resumed-" + std::to_string(::getpid()));
  auto options = MicroTraining(straight);
  options.vae_steps = options.dit_steps = 5;
  TrainDemoModel(options);
  // Interrupted (as by a signal) in the VAE stage and again in the DiT stage, each time one step after a
  // checkpoint, then run to the end: the same weights as the straight run.
  options.out = resumed.string();
  struct Interrupted {};
  for (const char* stage : {"vae", "dit"}) {
    bool interrupted = false;
    try {
      TrainDemoModel(options, [&](const TrainProgress& p) {
        if (p.stage == stage && p.step == 3) throw Interrupted{};
      });
    } catch (const Interrupted&) {
      interrupted = true;
    }
    EXPECT_TRUE(interrupted) << "the " << stage << " stage did not reach step 3";
  }
  TrainDemoModel(options);
  for (const char* file :
       {"diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"}) {
    const bool safetensors = std::string(file).ends_with(".safetensors");
    auto read = [&](const fs::path& dir) {
      return safetensors ? io::SafetensorsFile((dir / file).string()).Tensors()
                         : io::ReadTorchCheckpoint((dir / file).string());
    };
    const auto a = read(straight), b = read(resumed);
    ASSERT_EQ(a.size(), b.size()) << file;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << file << " " << a[i].first;
    }
  }
  fs::remove_all(straight);
  fs::remove_all(resumed);
}

}  // namespace
}  // namespace vidgen::demo
