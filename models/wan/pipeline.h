// Wan2.1 text-to-video: tokenize and encode the prompts, denoise seeded noise with classifier-free guidance, decode.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "cache/calibration.h"
#include "models/dit/pipeline.h"
#include "models/encoders/clip_vision.h"
#include "models/encoders/umt5.h"
#include "models/families.h"
#include "models/text/t5_tokenizer.h"
#include "models/wan/dit.h"
#include "models/wan/image_condition.h"
#include "models/wan/loader.h"
#include "models/wan/vae.h"

namespace vidgen::wan {

// The reference's default negative prompt (wan/configs/shared_config.py), used when a request gives none; the I2V
// and FLF2V configs put more in front of it.
extern const char* const kDefaultNegativePrompt;
std::string DefaultNegativePrompt(WanModelType type);

struct WanLoadOptions {
  c10::ScalarType dtype = c10::ScalarType::Float;  // of the DiT's and T5's matrix products; the VAE runs fp32
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  // Run the conditional and unconditional passes as one batch of two (faster on a GPU, twice the activations).
  bool batch_cfg = false;
  // Sequence and CFG parallelism: this process denoises its chunk of the tokens of its CFG half (world.sequence()
  // and world.cfg()); nullptr for one process. Not owned; must outlive the pipeline.
  parallel::World* world = nullptr;
  // Read the cache calibration beside the checkpoint (off for `vidgen-bench calibrate`, which replaces it).
  bool load_calibration = true;
};

class WanPipeline : public dit::Pipeline {
 public:
  // Loads a checkpoint folder in the released layout (config.json, diffusion_pytorch_model*.safetensors,
  // models_t5_umt5-xxl-enc-bf16.pth, Wan2.1_VAE.pth, google/umt5-xxl/spiece.model; I2V/FLF2V also the CLIP file) or
  // in the diffusers layout (transformer/, vae/, text_encoder/, tokenizer/, image_encoder/), with the cache
  // calibration beside it when there is one. Throws Error naming the file or tensor that does not fit.
  static std::unique_ptr<WanPipeline> Load(const std::string& dir, const WanLoadOptions& options = {});

  std::int64_t side_multiple() const override;
  cache::CacheFootprint TokenFootprint() const override { return dit_->Footprint(1, 1, 1); }
  // I2V/FLF2V: the request's width × height is the video's area; its sides follow the first image's aspect ratio.
  void Validate(const GenerationRequest& request) const override;
  GenerationRequest Sized(const GenerationRequest& request) const override;
  WanModelType model_type() const { return dit_->config().model_type; }
  spec::Task task() const override;

  // The stages, for tests and tools.
  // Per prompt the encoder states of its real tokens (</s> included): [len, text_dim] fp32.
  std::vector<at::Tensor> EncodeText(const text::TokenizedText& tokens);
  // I2V/FLF2V: the images in [-1, 1] ([3, H, W], `last` undefined for I2V; FLF2V's last one already FitLastImage'd)
  // -> the CLIP features and the conditioning latents of a video of `frames` frames of `size` latents.
  WanImageInput EncodeImages(const at::Tensor& first, const at::Tensor& last, std::int64_t frames,
                             const LatentSize& size);
  // noise: [z, T, h, w] -> denoised latents [z, T, h, w], under the pipeline's world and batch_cfg (not those of
  // `options`), and its calibration unless `options` brings one.
  at::Tensor Denoise(const at::Tensor& noise, const WanCondition& condition, const dit::SamplerOptions& options,
                     const GenerationCallbacks& callbacks = {}, const dit::StepObserver& observer = nullptr,
                     GenerationStats* stats = nullptr);
  // latents [z, T, h, w] -> video [3, 1+4(T-1), 8h, 8w] in [-1, 1].
  at::Tensor Decode(const at::Tensor& latents) override;

  const text::T5Tokenizer& tokenizer() const { return *tokenizer_; }
  WanDit& dit() { return dit_; }
  WanVae& vae() { return vae_; }
  encoders::ClipVisionEncoder& clip() { return clip_; }
  const WanLoadOptions& options() const { return options_; }
  const std::optional<cache::GuidanceCalibration>& calibration() const { return calibration_; }

 private:
  explicit WanPipeline(WanLoadOptions options, WanCheckpoint parts);

  std::unique_ptr<dit::Denoiser> Condition(const GenerationRequest& request) override;
  dit::SamplerOptions Sampler(const GenerationRequest& request) const override;
  at::Tensor Noise(const GenerationRequest& request) const override;
  const dit::TokenSpace& space() const override { return dit_->space(); }
  std::vector<const torch::nn::Module*> Modules() const override;
  torch::nn::Module& Transformer() override { return *dit_; }
  const io::KeyMap& TransformerAliases() const override { return DiffusersDitKeyMap(); }

  WanLoadOptions options_;
  std::unique_ptr<text::T5Tokenizer> tokenizer_;
  encoders::UmT5Encoder t5_;
  WanDit dit_;
  WanVae vae_;
  encoders::ClipVisionEncoder clip_;                       // I2V/FLF2V only
  std::optional<cache::GuidanceCalibration> calibration_;  // the checkpoint's cache calibration
};

// The family's entry (models/families.h): a released folder (config.json beside the DiT's safetensors) or a diffusers
// one (transformer/config.json of a WanTransformer3DModel).
bool IsWanCheckpoint(const std::filesystem::path& dir);
std::unique_ptr<VideoPipeline> LoadWanPipeline(const std::string& dir, const PipelineOptions& options);

}  // namespace vidgen::wan
