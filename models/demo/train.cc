#include "models/demo/train.h"

#include <algorithm>

#include <torch/torch.h>

#include "models/io/json_config.h"

namespace vidgen::demo {

at::Tensor SampleSigmas(std::int64_t count, double shift, at::Generator& generator) {
  const auto u = torch::rand({count}, generator, torch::kFloat).clamp(1e-4, 1 - 1e-4);
  return shift * u / (1 + (shift - 1) * u);
}

ClipSet RenderClips(const std::vector<ClipSpec>& specs, int per_spec, std::uint64_t first_seed,
                    const RenderOptions& options) {
  ClipSet set;
  std::vector<at::Tensor> videos, objects;
  std::uint64_t seed = first_seed;
  for (const auto& spec : specs) {
    const auto& rgb = BackgroundColours()[static_cast<std::size_t>(spec.background)].rgb;
    const auto background = torch::tensor({rgb[0], rgb[1], rgb[2]}, torch::kUInt8);
    for (int i = 0; i < per_spec; ++i) {
      const auto clip = Render(spec, ++seed, options).permute({3, 0, 1, 2});  // [3, F, H, W]
      videos.push_back(clip.to(torch::kFloat).div(127.5).sub(1));
      objects.push_back(clip.ne(background.view({3, 1, 1, 1})).any(0, /*keepdim=*/true));
      set.prompts.push_back(Prompt(spec));
    }
  }
  set.videos = torch::stack(videos);
  set.objects = torch::stack(objects);
  return set;
}

RenderOptions TrainedClip(const std::string& model_dir) {
  RenderOptions clip;
  clip.size = 32;
  io::JsonConfig config(model_dir + "/config.json", "Wan config");
  config.Descend("vidgen_defaults");
  config.Read("frames", clip.frames);
  config.Read("width", clip.size);
  return clip;
}

at::Tensor EncodeClips(wan::WanVae& vae, const at::Tensor& videos) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> encoded;
  for (std::int64_t i = 0; i < videos.size(0); i += 16) encoded.push_back(vae->Encode(videos.slice(0, i, i + 16)));
  return torch::cat(encoded);
}

at::Tensor FlowMatchingLoss(wan::WanDit& dit, const at::Tensor& x0, const std::vector<at::Tensor>& contexts,
                            const at::Tensor& sigmas, const at::Tensor& noise) {
  const auto sigma = sigmas.view({-1, 1, 1, 1, 1});
  const auto noisy = (1 - sigma) * x0 + sigma * noise;
  wan::WanDitInput input;
  input.timesteps = sigmas * 1000.0;
  input.context = contexts;
  for (std::int64_t b = 0; b < x0.size(0); ++b) input.x.push_back(noisy[b]);
  const auto velocity = torch::stack(dit->forward(input));
  return (velocity - (noise - x0)).pow(2).mean();
}

at::Tensor FlowMatchingLoss(wan::WanDit& dit, encoders::UmT5Encoder& t5, const FlowMatchingBatch& batch,
                            const at::Tensor& sigmas, const at::Tensor& noise) {
  const auto hidden = t5->forward(batch.text.ids, batch.text.mask);
  std::vector<at::Tensor> contexts;
  for (std::int64_t b = 0; b < hidden.size(0); ++b) {
    contexts.push_back(hidden[b].slice(0, 0, batch.text.mask[b].sum().item<std::int64_t>()));
  }
  return FlowMatchingLoss(dit, batch.latents, contexts, sigmas, noise);
}

double FlowMatchingStep(wan::WanDit& dit, encoders::UmT5Encoder& t5, const FlowMatchingBatch& batch,
                        torch::optim::Optimizer& optimizer, double shift, at::Generator& generator) {
  const auto sigmas = SampleSigmas(batch.latents.size(0), shift, generator);
  const auto noise = torch::randn(batch.latents.sizes(), generator, batch.latents.options());
  optimizer.zero_grad();
  const auto loss = FlowMatchingLoss(dit, t5, batch, sigmas, noise);
  loss.backward();
  optimizer.step();
  return loss.item<double>();
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double base, int step, int total, int decay_steps) {
  const int decay = std::min(decay_steps, total);  // a short run decays over all of it
  const double left = total - step;
  const double lr = decay > 0 && left < decay ? base * left / decay : base;
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

VaeLosses VaeLoss(wan::WanVae& vae, const at::Tensor& video, const at::Tensor& pixel_weights, double kl_weight,
                  at::Generator& generator) {
  const auto [mu, logvar] = vae->EncodeMoments(video);
  const auto z = mu + torch::exp(0.5 * logvar) * torch::randn(mu.sizes(), generator, mu.options());
  const auto error = (vae->Decode(z, /*clamp=*/false) - video).pow(2);
  const auto reconstruction =
      pixel_weights.defined() ? (error * pixel_weights).mean() / pixel_weights.mean() : error.mean();
  const auto kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean();
  return {reconstruction + kl_weight * kl, reconstruction.item<double>(), kl.item<double>()};
}

VaeLosses VaeStep(wan::WanVae& vae, const at::Tensor& video, const at::Tensor& pixel_weights, double kl_weight,
                  torch::optim::Optimizer& optimizer, at::Generator& generator) {
  optimizer.zero_grad();
  auto losses = VaeLoss(vae, video, pixel_weights, kl_weight, generator);
  losses.total.backward();
  optimizer.step();
  return losses;
}

}  // namespace vidgen::demo
