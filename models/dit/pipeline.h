// What every family's pipeline does with a request, in stages timed for the stats: check it, condition the
// transformer on its texts (a Denoiser), draw the seeded noise, denoise, decode. A family supplies the stages.
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/dit/denoise.h"
#include "models/generation.h"
#include "models/io/weight_store.h"
#include "models/lora/adapter.h"
#include "models/lora/merged_sets.h"

namespace vidgen::dit {

class Pipeline : public VideoPipeline {
 public:
  GenerationResult Generate(const GenerationRequest& request, const GenerationCallbacks& callbacks = {}) final;

  // Checks a request against this model (sizes, frames, steps, guidance, shift); throws Error(INVALID_ARGUMENT)
  // naming the field.
  virtual void Validate(const GenerationRequest& request) const = 0;
  // The request with the video size the model makes of it (an image-to-video model's follows its image).
  virtual GenerationRequest Sized(const GenerationRequest& request) const { return request; }
  std::vector<at::Tensor> weights() const final;
  lora::Adapter ReadLora(const std::string& path) final;
  void KeepLoraSets(std::size_t sets) final { kept_lora_sets_ = sets; }

 protected:
  // The transformer conditioned on the request's prompt and negative prompt.
  virtual std::unique_ptr<Denoiser> Condition(const GenerationRequest& request) = 0;
  // The sampler's settings for the request (schedule, guidance, cache, world).
  virtual SamplerOptions Sampler(const GenerationRequest& request) const = 0;
  // The request's initial latents [C, T, H, W] on the model's device.
  virtual at::Tensor Noise(const GenerationRequest& request) const = 0;
  virtual const TokenSpace& space() const = 0;
  // latents [C, T, H, W] -> video [3, F, H, W], about [-1, 1].
  virtual at::Tensor Decode(const at::Tensor& latents) = 0;
  // Every module the pipeline holds (DiT, encoders, VAE).
  virtual std::vector<const torch::nn::Module*> Modules() const = 0;
  // The module LoRAs apply to, and the names its other checkpoint layout gives its parameters (diffusers').
  virtual torch::nn::Module& Transformer() = 0;
  virtual const io::KeyMap& TransformerAliases() const = 0;

 private:
  std::size_t kept_lora_sets_ = 2;
  // The request's LoRAs on the transformer: a set stays applied after its job, a different one (none included)
  // first restores the base weights exactly, and the last few are kept merged.
  std::unique_ptr<lora::MergedSets> loras_;
};

}  // namespace vidgen::dit
