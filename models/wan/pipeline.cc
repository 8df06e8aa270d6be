#include "models/wan/pipeline.h"

#include <cmath>
#include <array>
#include <optional>
#include <span>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"

namespace vidgen::wan {
namespace {

// Spatial and temporal compression of the Wan-VAE.
constexpr std::int64_t kVaeStrideHW = 8;

}  // namespace

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

WanPipeline::WanPipeline(WanLoadOptions options, std::unique_ptr<text::T5Tokenizer> tokenizer, encoders::UmT5Encoder t5, WanDit dit,
                         WanVae vae)
    : options_(options),
      tokenizer_(std::move(tokenizer)),
      t5_(std::move(t5)),
      dit_(std::move(dit)),
      vae_(std::move(vae)) {}

std::unique_ptr<WanPipeline> WanPipeline::Load(const std::string& dir, const WanLoadOptions& options) {
  return FromParts(LoadWanCheckpoint(dir, options.dtype), options);
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

namespace {

// Wan's transformer over one generation: the prompt's and the negative prompt's text states, embedded once.
class WanDenoiser final : public dit::Denoiser {
 public:
  WanDenoiser(WanDit& dit, at::Tensor prompt, at::Tensor negative)
      : dit_(dit), text_{std::move(prompt), std::move(negative)} {}

  c10::Device device() const override { return dit_->patch_embedding->weight.device(); }

  void Prepare(const dit::Shard& shard, const dit::Grid& grid) override {
    shard_ = shard;
    for (std::size_t rows = 1; rows <= 2; ++rows) {
      const std::vector<dit::Grid> grids(rows, grid);
      layouts_[rows - 1] = dit_->Layout(shard, grids);
    }
  }

  cache::CacheFootprint Footprint(std::int64_t batch, int streams) const override {
    return dit_->Footprint(batch, shard_.chunk, streams);
  }

  at::Tensor Predict(const at::Tensor& tokens, double timestep, std::span<const dit::Condition> conditions,
                     cache::FeatureCache::Forward* cache) override {
    // The time embedding is the same for both guidance passes of a step.
    if (timestep != timestep_) {
      std::tie(time_, time_projection_) =
          dit_->EmbedTime(torch::full({1}, timestep, torch::TensorOptions().dtype(torch::kFloat64).device(device())));
      timestep_ = timestep;
    }
    const auto rows = static_cast<std::int64_t>(conditions.size());
    WanTokenInput input;
    input.tokens = tokens.unsqueeze(0).expand({rows, -1, -1});
    std::vector<at::Tensor> text;
    for (const auto condition : conditions) text.push_back(text_[condition == dit::Condition::kPrompt ? 0 : 1]);
    input.text_states = torch::cat(text);
    input.time = time_.expand({rows, -1});
    input.time_projection = time_projection_.expand({rows, -1, -1});
    return dit_->ForwardTokens(input, layouts_[static_cast<std::size_t>(rows - 1)], cache);
  }

 private:
  WanDit& dit_;
  std::array<at::Tensor, 2> text_;  // EmbedText of the prompt and of the negative prompt
  dit::Shard shard_;
  std::array<dit::TokenLayout, 2> layouts_;  // for one row and for two
  double timestep_ = -1;
  at::Tensor time_, time_projection_;
};

}  // namespace

at::Tensor WanPipeline::Denoise(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& context_null,
                                const DenoiseOptions& options, const GenerationCallbacks& callbacks,
                                const StepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  WanDenoiser denoiser(dit_, dit_->EmbedText({context.to(options_.device)}),
                       dit_->EmbedText({context_null.to(options_.device)}));
  auto sampler = options;
  sampler.world = options_.world;
  sampler.batch_cfg = options_.batch_cfg;
  return dit::Denoise(denoiser, space(), noise, sampler, callbacks, observer, stats);
}

at::Tensor WanPipeline::Decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  return vae_->Decode(latents.unsqueeze(0).to(options_.device, torch::kFloat))[0];
}

std::unique_ptr<dit::Denoiser> WanPipeline::Condition(const GenerationRequest& request) {
  const auto negative = request.negative_prompt.empty() ? std::string(kDefaultNegativePrompt) : request.negative_prompt;
  const auto contexts = EncodeText(tokenizer_->Encode({request.prompt, negative}));
  return std::make_unique<WanDenoiser>(dit_, dit_->EmbedText({contexts[0]}), dit_->EmbedText({contexts[1]}));
}

dit::SamplerOptions WanPipeline::Sampler(const GenerationRequest& request) const {
  dit::SamplerOptions sampler;
  sampler.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true};
  sampler.guidance_scale = request.guidance_scale;
  sampler.batch_cfg = options_.batch_cfg;
  sampler.cache = request.cache;
  sampler.world = options_.world;
  return sampler;
}

at::Tensor WanPipeline::Noise(const GenerationRequest& request) const {
  return SeededNoise(request, dit_->config().in_dim, kVaeStrideHW, options_.device);
}

bool IsWanCheckpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(dir / "config.json")) {
    return fs::exists(dir / "diffusion_pytorch_model.safetensors") ||
           fs::exists(dir / "diffusion_pytorch_model.safetensors.index.json");
  }
  const auto config = dir / "transformer" / "config.json";
  return fs::is_regular_file(config) &&
         io::JsonConfig(config.string(), "diffusers transformer config").json().value("_class_name", "") ==
             "WanTransformer3DModel";
}

std::unique_ptr<VideoPipeline> LoadWanPipeline(const std::string& dir, const PipelineOptions& options) {
  WanLoadOptions load;
  load.dtype = options.dtype;
  load.device = options.device;
  load.world = options.world;
  return WanPipeline::Load(dir, load);
}

}  // namespace vidgen::wan
