#include "models/wan/pipeline.h"

#include <torch/torch.h>

namespace vidgen::wan {
namespace {

// Spatial and temporal compression of the Wan-VAE.
constexpr std::int64_t kVaeStrideHW = 8;

}  // namespace

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

WanPipeline::WanPipeline(WanLoadOptions options, std::unique_ptr<text::T5Tokenizer> tokenizer, encoders::UmT5Encoder t5,
                         WanDit dit, WanVae vae)
    : options_(options),
      tokenizer_(std::move(tokenizer)),
      t5_(std::move(t5)),
      dit_(std::move(dit)),
      vae_(std::move(vae)) {}

std::unique_ptr<WanPipeline> WanPipeline::Load(const std::string& dir, const WanLoadOptions& options) {
  auto pipeline = FromParts(LoadWanCheckpoint(dir, options.dtype, options.device), options);
  const auto calibration = std::filesystem::path(dir) / cache::kCalibrationFile;
  if (options.load_calibration && std::filesystem::exists(calibration))
    pipeline->calibration_ = cache::LoadCalibration(calibration.string());
  return pipeline;
}

std::unique_ptr<WanPipeline> WanPipeline::FromParts(WanCheckpoint parts, const WanLoadOptions& options) {
  parts.t5->to(options.device);
  parts.dit->to(options.device);
  parts.vae->to(options.device);
  return std::unique_ptr<WanPipeline>(new WanPipeline(options, std::move(parts.tokenizer), std::move(parts.t5),
                                                      std::move(parts.dit), std::move(parts.vae)));
}

// Prompts longer than the text encoder reads are cut (keeping </s>), as the reference's tokenizer truncates them.
void WanPipeline::Validate(const GenerationRequest& request) const {
  ValidateRequest(request, side_multiple(), /*min_guidance=*/0.0);
}

std::int64_t WanPipeline::side_multiple() const {
  return kVaeStrideHW * dit_->config().patch_size[1];
}

std::vector<at::Tensor> WanPipeline::EncodeText(const text::TokenizedText& tokens) {
  torch::NoGradGuard no_grad;
  const auto hidden = t5_->forward(tokens.ids.to(options_.device), tokens.mask.to(options_.device));
  std::vector<at::Tensor> contexts;
  for (std::int64_t i = 0; i < hidden.size(0); ++i) {
    const auto length = tokens.mask[i].sum().item<std::int64_t>();
    contexts.push_back(hidden[i].slice(0, 0, length).to(torch::kFloat));
  }
  return contexts;
}

at::Tensor WanPipeline::Denoise(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& context_null,
                                const dit::SamplerOptions& options, const GenerationCallbacks& callbacks,
                                const dit::StepObserver& observer, GenerationStats* stats) {
  auto sampler = options;
  sampler.world = options_.world;
  sampler.batch_cfg = options_.batch_cfg;
  if (!sampler.calibration && calibration_) sampler.calibration = &*calibration_;
  return dit::Denoise(*MakeDenoiser(dit_, context, context_null), space(), noise, sampler, callbacks, observer, stats);
}

at::Tensor WanPipeline::Decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  return vae_->Decode(latents.unsqueeze(0).to(options_.device, torch::kFloat))[0];
}

std::unique_ptr<dit::Denoiser> WanPipeline::Condition(const GenerationRequest& request) {
  const auto negative = request.negative_prompt.empty() ? std::string(kDefaultNegativePrompt) : request.negative_prompt;
  const auto contexts = EncodeText(tokenizer_->Encode({request.prompt, negative}));
  return MakeDenoiser(dit_, contexts[0], contexts[1]);
}

dit::SamplerOptions WanPipeline::Sampler(const GenerationRequest& request) const {
  dit::SamplerOptions sampler;
  sampler.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true};
  sampler.guidance_scale = request.guidance_scale;
  sampler.batch_cfg = options_.batch_cfg;
  sampler.cache = request.cache;
  sampler.calibration = calibration_ ? &*calibration_ : nullptr;
  sampler.world = options_.world;
  return sampler;
}

at::Tensor WanPipeline::Noise(const GenerationRequest& request) const {
  return SeededNoise(request, dit_->config().in_dim, kVaeStrideHW, options_.device);
}

bool IsWanCheckpoint(const std::filesystem::path& dir) {
  if (std::filesystem::is_regular_file(dir / "config.json")) {
    return std::filesystem::exists(dir / "diffusion_pytorch_model.safetensors") ||
           std::filesystem::exists(dir / "diffusion_pytorch_model.safetensors.index.json");
  }
  return IsDiffusersTransformer(dir, "WanTransformer3DModel");
}

std::unique_ptr<VideoPipeline> LoadWanPipeline(const std::string& dir, const PipelineOptions& options) {
  return WanPipeline::Load(dir, FamilyOptions<WanLoadOptions>(options));
}

}  // namespace vidgen::wan
