// Training the Wan2.1 architecture with our own modules and LibTorch's autograd: the flow-matching objective of
// the DiT with the umT5 encoder trained jointly (models.md C: x_σ = (1−σ)·x0 + σ·ε, target ε − x0, σ drawn by
// Wan's shifted timestep sampling).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include "models/demo/world.h"
#include "models/encoders/umt5.h"
#include "models/text/t5_tokenizer.h"
#include "models/wan/dit.h"
#include "models/wan/vae.h"

namespace vidgen::demo {

// Clips of `specs`, `per_spec` of each with seeds first_seed + 1, + 2, ...: videos [N, 3, F, H, W] in [−1, 1], where
// the object is ([N, 1, F, H, W] bool: the pixels that differ from the clip's background), and their prompts.
struct ClipSet {
  at::Tensor videos;
  at::Tensor objects;
  std::vector<std::string> prompts;
};
ClipSet RenderClips(const std::vector<ClipSpec>& specs, int per_spec, std::uint64_t first_seed,
                    const RenderOptions& options);

// The clips a demo checkpoint was trained on: its config.json's defaults for jobs (width, frames; else 32 and 17).
RenderOptions TrainedClip(const std::string& model_dir);

// The VAE's latents of videos [N, 3, F, H, W], encoded a few at a time without gradients.
at::Tensor EncodeClips(wan::WanVae& vae, const at::Tensor& videos);

struct FlowMatchingBatch {
  at::Tensor latents;        // [B, C, F, H, W] clean VAE latents
  text::TokenizedText text;  // their prompts
};

// σ = shift·u/(1 + (shift − 1)·u) for u uniform in (0, 1): the training distribution of Wan's noise levels.
at::Tensor SampleSigmas(std::int64_t count, double shift, at::Generator& generator);

// The loss of latents x0 [B, C, F, H, W] under per-sample encoder states at the given noise levels and noise:
// mean((v(x_σ, σ·1000, context) − (ε − x0))²).
at::Tensor FlowMatchingLoss(wan::WanDit& dit, const at::Tensor& x0, const std::vector<at::Tensor>& contexts,
                            const at::Tensor& sigmas, const at::Tensor& noise);
// The same with the encoder in the graph: contexts = T5(text), trimmed to each prompt's tokens.
at::Tensor FlowMatchingLoss(wan::WanDit& dit, encoders::UmT5Encoder& t5, const FlowMatchingBatch& batch,
                            const at::Tensor& sigmas, const at::Tensor& noise);

// One optimiser step on a batch with fresh σ and noise from `generator`; returns the loss before the step.
double FlowMatchingStep(wan::WanDit& dit, encoders::UmT5Encoder& t5, const FlowMatchingBatch& batch,
                        torch::optim::Optimizer& optimizer, double shift, at::Generator& generator);

// Constant, then falling linearly to 0 over the last `decay_steps` of `total`: a function of the step alone, so a
// resumed run takes the same steps.
void SetLearningRate(torch::optim::Optimizer& optimizer, double base, int step, int total, int decay_steps);

struct VaeLosses {
  at::Tensor total;           // reconstruction + kl_weight · KL
  double reconstruction = 0;  // (weighted) mean squared error of the decoded video
  double kl = 0;              // KL(q(z|x) ‖ N(0, 1)) per latent element
};

// The Wan-VAE's objective on a batch of videos [B, 3, 1+4k, H, W] in [−1, 1]: encode to the posterior, draw
// z = μ + σ·ε (ε from `generator`), decode, and weigh the reconstruction against the KL term. `pixel_weights`
// ([B, 1, F, H, W], or undefined for uniform) weighs the squared error per pixel, normalised by its mean: a small
// object that a uniform mean would let the background drown can count as much as the background.
VaeLosses VaeLoss(wan::WanVae& vae, const at::Tensor& video, const at::Tensor& pixel_weights, double kl_weight,
                  at::Generator& generator);

// One optimiser step on a batch; returns its losses before the step.
VaeLosses VaeStep(wan::WanVae& vae, const at::Tensor& video, const at::Tensor& pixel_weights, double kl_weight,
                  torch::optim::Optimizer& optimizer, at::Generator& generator);

}  // namespace vidgen::demo
