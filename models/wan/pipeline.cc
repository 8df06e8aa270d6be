#include "models/wan/pipeline.h"

#include <torch/torch.h>

#include "common/error.h"

namespace vidgen::wan {
namespace {

// Spatial and temporal compression of the Wan-VAE.
constexpr std::int64_t kVaeStrideHW = 8;

}  // namespace

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

std::string DefaultNegativePrompt(WanModelType type) {
  switch (type) {
    case WanModelType::kT2V: return kDefaultNegativePrompt;
    case WanModelType::kI2V: return std::string("镜头晃动，") + kDefaultNegativePrompt;
    case WanModelType::kFLF2V: return std::string("镜头切换，镜头晃动，") + kDefaultNegativePrompt;
  }
  return kDefaultNegativePrompt;
}

WanPipeline::WanPipeline(WanLoadOptions options, WanCheckpoint parts)
    : options_(options),
      tokenizer_(std::move(parts.tokenizer)),
      t5_(std::move(parts.t5)),
      dit_(std::move(parts.dit)),
      vae_(std::move(parts.vae)),
      clip_(std::move(parts.clip)) {}

std::unique_ptr<WanPipeline> WanPipeline::Load(const std::string& dir, const WanLoadOptions& options) {
  // The parts come on options.device, the DiT's q/k/v fused there (a move would end the fusion).
  std::unique_ptr<WanPipeline> pipeline(
      new WanPipeline(options, LoadWanCheckpoint(dir, options.dtype, options.device)));
  const auto calibration = std::filesystem::path(dir) / cache::kCalibrationFile;
  if (options.load_calibration && std::filesystem::exists(calibration))
    pipeline->calibration_ = cache::LoadCalibration(calibration.string());
  return pipeline;
}

std::vector<const torch::nn::Module*> WanPipeline::Modules() const {
  std::vector<const torch::nn::Module*> modules = {t5_.get(), dit_.get(), vae_.get()};
  if (clip_) modules.push_back(clip_.get());
  return modules;
}

spec::Task WanPipeline::task() const {
  switch (model_type()) {
    case WanModelType::kT2V: return spec::Task::kTextToVideo;
    case WanModelType::kI2V: return spec::Task::kImageToVideo;
    case WanModelType::kFLF2V: return spec::Task::kFirstLastFrame;
  }
  return spec::Task::kTextToVideo;
}

// Prompts longer than the text encoder reads are cut (keeping </s>), as the reference's tokenizer truncates them.
void WanPipeline::Validate(const GenerationRequest& request) const {
  const int images = task() == spec::Task::kTextToVideo ? 0 : task() == spec::Task::kImageToVideo ? 1 : 2;
  ValidateRequest(request, side_multiple(), /*min_guidance=*/0.0, images);
  if (images == 2 && request.frames < 5) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'frames': {}, a first-last-frame video needs 5 or more",
         request.frames);
  }
  const auto sized = Sized(request);
  if (sized.width > 4096 || sized.height > 4096) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'image': its aspect ratio makes the video {}×{}, over 4096",
         sized.width, sized.height);
  }
}

GenerationRequest WanPipeline::Sized(const GenerationRequest& request) const {
  if (!request.image.defined()) return request;
  const auto size = ImageLatentSize(request.image.size(0), request.image.size(1),
                                    static_cast<double>(request.width) * static_cast<double>(request.height),
                                    kVaeStrideHW, dit_->config().patch_size[1]);
  auto sized = request;
  sized.height = size.height * kVaeStrideHW;
  sized.width = size.width * kVaeStrideHW;
  return sized;
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

WanImageInput WanPipeline::EncodeImages(const at::Tensor& first, const at::Tensor& last, std::int64_t frames,
                                        const LatentSize& size) {
  torch::NoGradGuard no_grad;
  const auto device_first = first.to(options_.device, torch::kFloat);
  const auto device_last = last.defined() ? last.to(options_.device, torch::kFloat) : at::Tensor();
  std::vector<at::Tensor> pixels = {clip_->Preprocess(device_first)};
  if (last.defined()) pixels.push_back(clip_->Preprocess(device_last));
  WanImageInput input;
  input.clip_features = clip_->Forward(torch::stack(pixels).to(clip_->patch_embedding->weight.scalar_type()));

  const std::int64_t height = size.height * kVaeStrideHW, width = size.width * kVaeStrideHW;
  const auto video =
      ConditioningVideo(ResizeBicubic(device_first, height, width),
                        last.defined() ? ResizeBicubic(device_last, height, width) : at::Tensor(), frames);
  const auto latents = vae_->Encode(video.unsqueeze(0))[0];
  input.y = torch::cat({FrameMask(frames, size, last.defined()).to(latents.device()), latents});
  return input;
}

at::Tensor WanPipeline::Denoise(const at::Tensor& noise, const WanCondition& condition,
                                const dit::SamplerOptions& options, const GenerationCallbacks& callbacks,
                                const dit::StepObserver& observer, GenerationStats* stats) {
  auto sampler = options;
  sampler.world = options_.world;
  sampler.batch_cfg = options_.batch_cfg;
  if (!sampler.calibration && calibration_) sampler.calibration = &*calibration_;
  return dit::Denoise(*MakeDenoiser(dit_, condition), space(), noise, sampler, callbacks, observer, stats);
}

at::Tensor WanPipeline::Decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  return vae_->Decode(latents.unsqueeze(0).to(options_.device, torch::kFloat))[0];
}

std::unique_ptr<dit::Denoiser> WanPipeline::Condition(const GenerationRequest& request) {
  const auto negative = request.negative_prompt.empty() ? DefaultNegativePrompt(model_type()) : request.negative_prompt;
  const auto contexts = EncodeText(tokenizer_->Encode({request.prompt, negative}));
  WanCondition condition{contexts[0], contexts[1], {}};
  if (request.image.defined()) {
    const auto first = ImageToModel(request.image);
    const auto last = request.last_image.defined()
                          ? FitLastImage(ImageToModel(request.last_image), first.size(1), first.size(2))
                          : at::Tensor();
    condition.image =
        EncodeImages(first, last, request.frames, {request.height / kVaeStrideHW, request.width / kVaeStrideHW});
  }
  return MakeDenoiser(dit_, condition);
}

dit::SamplerOptions WanPipeline::Sampler(const GenerationRequest& request) const {
  dit::SamplerOptions sampler;
  sampler.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true, request.timesteps};
  sampler.guidance_scale = request.guidance_scale;
  sampler.batch_cfg = options_.batch_cfg;
  sampler.cache = request.cache;
  sampler.calibration = calibration_ ? &*calibration_ : nullptr;
  sampler.world = options_.world;
  return sampler;
}

at::Tensor WanPipeline::Noise(const GenerationRequest& request) const {
  return SeededNoise(request, dit_->config().out_dim, kVaeStrideHW, options_.device);
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
