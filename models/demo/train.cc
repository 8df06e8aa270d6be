#include "models/demo/train.h"

#include <torch/torch.h>

namespace vidgen::demo {

at::Tensor SampleSigmas(std::int64_t count, double shift, at::Generator& generator) {
  const auto u = torch::rand({count}, generator, torch::kFloat).clamp(1e-4, 1 - 1e-4);
  return shift * u / (1 + (shift - 1) * u);
}

at::Tensor FlowMatchingLoss(wan::WanDit& dit, encoders::UmT5Encoder& t5, const FlowMatchingBatch& batch,
                            const at::Tensor& sigmas, const at::Tensor& noise) {
  const auto& x0 = batch.latents;
  const auto sigma = sigmas.view({-1, 1, 1, 1, 1});
  const auto noisy = (1 - sigma) * x0 + sigma * noise;
  const auto hidden = t5->forward(batch.text.ids, batch.text.mask);
  wan::WanDitInput input;
  input.timesteps = sigmas * 1000.0;
  for (std::int64_t b = 0; b < x0.size(0); ++b) {
    input.x.push_back(noisy[b]);
    input.context.push_back(hidden[b].slice(0, 0, batch.text.mask[b].sum().item<std::int64_t>()));
  }
  const auto velocity = torch::stack(dit->forward(input));
  return (velocity - (noise - x0)).pow(2).mean();
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

VaeLosses VaeLoss(wan::WanVae& vae, const at::Tensor& video, const at::Tensor& pixel_weights, double kl_weight,
                  at::Generator& generator) {
  const auto [mu, logvar] = vae->EncodeMoments(video);
  const auto z = mu + torch::exp(0.5 * logvar) * torch::randn(mu.sizes(), generator, mu.options());
  const auto error = (vae->Decode(z, /*clamp=*/false) - video).pow(2);
  const auto reconstruction = pixel_weights.defined()
                                  ? (error * pixel_weights).mean() / pixel_weights.mean()
                                  : error.mean();
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
