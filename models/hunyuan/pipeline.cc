#include "models/hunyuan/pipeline.h"

#include <filesystem>

#include <torch/torch.h>

#include "common/error.h"
#include "models/hunyuan/loader.h"

namespace vidgen::hunyuan {
namespace {

namespace fs = std::filesystem;
// A part of the checkpoint: <dir>/<name>, else beside <dir> (the release's ckpts/ keeps the text encoders there).
fs::path Part(const fs::path& dir, const std::string& name) {
  for (const auto& candidate : {dir / name, dir.parent_path() / name}) {
    if (fs::is_directory(candidate)) return candidate;
  }
  Fail(ErrorCode::kNotFound, "HunyuanVideo checkpoint '{}' has no '{}' folder (looked in it and beside it)",
       dir.string(), name);
}

constexpr const char* kVideoPromptTemplate =
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: 1. The main "
    "content and theme of the video.2. The color, shape, size, texture, quantity, text, and spatial relationships of "
    "the objects.3. Actions, events, behaviors temporal relationships, physical movement changes of the objects.4. "
    "background environment, light, style and atmosphere.5. camera angles, movements, and transitions used in the "
    "video:<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>";

}  // namespace

std::string VideoPromptText(const std::string& prompt) {
  const std::string_view text = kVideoPromptTemplate;
  const auto at = text.find("{}");
  return std::string(text.substr(0, at)).append(prompt).append(text.substr(at + 2));
}

std::int64_t VideoPromptCrop(const text::LlamaTokenizer& tokenizer) {
  const std::string text = kVideoPromptTemplate;
  return 1 + static_cast<std::int64_t>(tokenizer.Encode(text.substr(0, text.find("{}"))).size());
}

std::unique_ptr<HunyuanPipeline> HunyuanPipeline::Load(const std::string& dir, const HunyuanLoadOptions& options) {
  std::unique_ptr<HunyuanPipeline> pipeline(new HunyuanPipeline());
  pipeline->options_ = options;
  fs::path root = dir;
  if (!fs::is_directory(root / "transformers") && !fs::is_directory(root / "transformer") &&
      fs::is_directory(root / "hunyuan-video-t2v-720p")) {
    root /= "hunyuan-video-t2v-720p";  // the release's ckpts/ folder
  }
  pipeline->dit_ = LoadHunyuanDit(root.string(), options.dtype, options.device);
  pipeline->dit_->eval();
  pipeline->vae_ = LoadHunyuanVae(Part(root, "vae").string(), options.device);
  const auto llama_dir = Part(root, "text_encoder"), clip_dir = Part(root, "text_encoder_2");
  pipeline->llama_tokenizer_ = std::make_unique<text::LlamaTokenizer>(llama_dir.string());
  pipeline->clip_tokenizer_ = std::make_unique<text::ClipTokenizer>(clip_dir.string());
  pipeline->llama_ = encoders::LoadLlamaEncoder(llama_dir.string(), options.dtype, options.device);
  pipeline->clip_ = encoders::LoadClipTextEncoder(clip_dir.string(), options.dtype, options.device);
  pipeline->crop_start_ = VideoPromptCrop(*pipeline->llama_tokenizer_);
  const auto& config = pipeline->dit_->config();
  if (pipeline->llama_->config().hidden_size != config.text_states_dim ||
      pipeline->clip_->config().hidden_size != config.text_states_dim_2) {
    Fail(ErrorCode::kInvalidArgument,
         "HunyuanVideo checkpoint '{}': the text encoders give {} and {} features, the transformer takes {} and {}",
         dir, pipeline->llama_->config().hidden_size, pipeline->clip_->config().hidden_size, config.text_states_dim,
         config.text_states_dim_2);
  }
  return pipeline;
}

void HunyuanPipeline::Validate(const GenerationRequest& request) const {
  // The embedded guidance is a conditioning value, not a CFG scale: 0 means nothing here.
  // Prompts longer than the text encoder reads are cut, as the reference's tokenizer truncates them.
  ValidateRequest(request, side_multiple(), /*min_guidance=*/1e-3);
}

std::int64_t HunyuanPipeline::side_multiple() const {
  return vae_->config().spatial_compression * dit_->config().patch_size[1];
}

HunyuanText HunyuanPipeline::EncodeText(const std::string& prompt) {
  torch::NoGradGuard no_grad;
  const auto tokens = llama_tokenizer_->Batch({VideoPromptText(prompt)}, crop_start_ + options_.text_len);
  const auto hidden = llama_->HiddenState(tokens.ids, tokens.mask, options_.skip_layers);
  HunyuanText out;
  out.states = hidden[0].slice(0, crop_start_).to(torch::kFloat);
  out.mask = tokens.mask[0].slice(0, crop_start_);
  const auto clip_tokens = clip_tokenizer_->Batch({prompt}, options_.clip_len);
  out.pooled = clip_->Forward(clip_tokens.ids, clip_tokens.mask).pooled[0].to(torch::kFloat);
  return out;
}

std::unique_ptr<dit::Denoiser> HunyuanPipeline::Condition(const GenerationRequest& request) {
  return MakeDenoiser(dit_, EncodeText(request.prompt), request.guidance_scale);
}

dit::SamplerOptions HunyuanPipeline::Sampler(const GenerationRequest& request) const {
  dit::SamplerOptions sampler;  // guidance 1: the guidance is embedded, one pass a step
  sampler.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/false, request.timesteps};
  sampler.cache = request.cache;
  sampler.world = options_.world;
  return sampler;
}

at::Tensor HunyuanPipeline::Noise(const GenerationRequest& request) const {
  return SeededNoise(request, dit_->config().in_channels, vae_->config().spatial_compression, options_.device);
}

at::Tensor HunyuanPipeline::Decode(const at::Tensor& latents) {
  return vae_->Decode(latents.unsqueeze(0), options_.vae_tiling)[0];
}

bool IsHunyuanCheckpoint(const std::filesystem::path& dir) {
  return fs::exists(dir / "transformers" / "mp_rank_00_model_states.pt") ||
         fs::is_directory(dir / "hunyuan-video-t2v-720p") ||
         IsDiffusersTransformer(dir, "HunyuanVideoTransformer3DModel");
}

std::unique_ptr<VideoPipeline> LoadHunyuanPipeline(const std::string& dir, const PipelineOptions& options) {
  return HunyuanPipeline::Load(dir, FamilyOptions<HunyuanLoadOptions>(options));
}

}  // namespace vidgen::hunyuan
