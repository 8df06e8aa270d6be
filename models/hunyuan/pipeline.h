// HunyuanVideo text-to-video: the prompt through the LLaMA encoder (video template, cropped) and CLIP-L, the DiT
// under flow-matching Euler with embedded guidance, and the causal VAE. Layout of a checkpoint folder, as released:
//   <dir>/transformers/mp_rank_00_model_states.pt (+ config.json for other sizes)   or diffusers' transformer/
//   <dir>/vae/{config.json, pytorch_model.pt | *.safetensors}
//   <dir>/text_encoder/{config.json, *.safetensors, tokenizer.json}      (also looked for beside <dir>, as in ckpts/)
//   <dir>/text_encoder_2/{config.json, *.safetensors, vocab.json, merges.txt}
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "models/dit/pipeline.h"
#include "models/encoders/clip_text.h"
#include "models/encoders/llama.h"
#include "models/families.h"
#include "models/generation.h"
#include "models/hunyuan/dit.h"
#include "models/hunyuan/vae.h"
#include "models/text/hf_tokenizers.h"

namespace vidgen::hunyuan {

// The reference's video prompt template (dit-llm-encode-video) with `prompt` in its place.
std::string VideoPromptText(const std::string& prompt);
// How many tokens of a templated prompt come before the prompt, BOS included (95 with the released tokenizer): the
// LLM's states there are cropped off.
std::int64_t VideoPromptCrop(const text::LlamaTokenizer& tokenizer);

struct HunyuanLoadOptions {
  c10::ScalarType dtype = c10::kBFloat16;  // DiT and text encoders; the VAE runs in fp32
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  parallel::World* world = nullptr;
  HunyuanVaeTiling vae_tiling;
  std::int64_t text_len = 256;  // LLaMA tokens kept after the template
  std::int64_t clip_len = 77;
  std::int64_t skip_layers = 2;  // hidden_states[-(2+1)]
};

class HunyuanPipeline : public dit::Pipeline {
 public:
  // Throws Error naming the folder or file that is missing or does not fit.
  static std::unique_ptr<HunyuanPipeline> Load(const std::string& dir, const HunyuanLoadOptions& options = {});

  // request.guidance_scale is the embedded guidance (6.0 in the release); the negative prompt is not used (the
  // distilled model runs one pass per step); the release samples with Euler (spec::FamilyDefaults).
  void Validate(const GenerationRequest& request) const override;
  std::int64_t side_multiple() const override;
  cache::CacheFootprint TokenFootprint() const override { return dit_->Footprint(1, 1, 0, 1); }
  HunyuanText EncodeText(const std::string& prompt);

  HunyuanDit& dit() { return dit_; }
  HunyuanVae& vae() { return vae_; }

 private:
  HunyuanPipeline() = default;

  std::unique_ptr<dit::Denoiser> Condition(const GenerationRequest& request) override;
  dit::SamplerOptions Sampler(const GenerationRequest& request) const override;
  at::Tensor Noise(const GenerationRequest& request) const override;
  const dit::TokenSpace& space() const override { return dit_->space(); }
  torch::nn::Module& Transformer() override { return *dit_; }
  const io::KeyMap& TransformerAliases() const override {
    static const io::KeyMap released_names_only;
    return released_names_only;
  }
  std::vector<const torch::nn::Module*> Modules() const override {
    return {llama_.get(), clip_.get(), dit_.get(), vae_.get()};
  }
  at::Tensor Decode(const at::Tensor& latents) override;

  HunyuanLoadOptions options_;
  std::unique_ptr<text::LlamaTokenizer> llama_tokenizer_;
  std::unique_ptr<text::ClipTokenizer> clip_tokenizer_;
  encoders::LlamaEncoder llama_{nullptr};
  encoders::ClipTextEncoder clip_{nullptr};
  HunyuanDit dit_{nullptr};
  HunyuanVae vae_{nullptr};
  std::int64_t crop_start_ = 0;
};

// The family's entry (models/families.h): the released layout (transformers/mp_rank_00_model_states.pt, or the
// release's ckpts/ folder) or diffusers' (transformer/config.json of a HunyuanVideoTransformer3DModel).
bool IsHunyuanCheckpoint(const std::filesystem::path& dir);
std::unique_ptr<VideoPipeline> LoadHunyuanPipeline(const std::string& dir, const PipelineOptions& options);

}  // namespace vidgen::hunyuan
