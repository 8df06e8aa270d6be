#include "models/wan/pipeline.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "models/wan/loader.h"

namespace vidgen::wan {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Spatial and temporal compression of the Wan-VAE.
constexpr std::int64_t kVaeStrideT = 4;
constexpr std::int64_t kVaeStrideHW = 8;

}  // namespace

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

WanPipeline::WanPipeline(WanLoadOptions options, std::unique_ptr<WanTokenizer> tokenizer, UmT5Encoder t5,
                         WanDit dit, WanVae vae)
    : options_(options), tokenizer_(std::move(tokenizer)), t5_(std::move(t5)), dit_(std::move(dit)),
      vae_(std::move(vae)) {}

std::unique_ptr<WanPipeline> WanPipeline::Load(const std::string& dir, const WanLoadOptions& options) {
  auto parts = LoadWanCheckpoint(dir, options.dtype);
  parts.t5->to(options.device);
  parts.dit->to(options.device);
  parts.vae->to(options.device);
  return std::unique_ptr<WanPipeline>(new WanPipeline(options, std::move(parts.tokenizer), std::move(parts.t5),
                                                      std::move(parts.dit), std::move(parts.vae)));
}

void WanPipeline::Validate(const GenerationRequest& request) const {
  const auto& config = dit_->config();
  if (request.prompt.empty()) Fail(ErrorCode::kInvalidArgument, "invalid value for 'prompt': it is empty");
  for (const auto& [field, text] : {std::pair{"prompt", &request.prompt}, {"negative_prompt", &request.negative_prompt}}) {
    const auto tokens = static_cast<std::int64_t>(tokenizer_->Ids(*text).size());
    if (tokens > tokenizer_->text_len()) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': {} tokens, the text encoder reads at most {}", field,
           tokens, tokenizer_->text_len());
    }
  }
  if (request.frames < 1 || (request.frames - 1) % kVaeStrideT != 0) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'frames': {}, expected 4k+1 (1, 5, 9, ..., 81)",
         request.frames);
  }
  const std::int64_t multiple = kVaeStrideHW * config.patch_size[1];
  for (const auto& [field, value] : {std::pair{"width", request.width}, {"height", request.height}}) {
    if (value < multiple || value % multiple != 0 || value > 4096) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': {}, expected a multiple of {} from {} to 4096", field,
           value, multiple, multiple);
    }
  }
  if (request.steps < 1 || request.steps > 1000) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'steps': {}, expected 1 to 1000", request.steps);
  }
  if (!std::isfinite(request.guidance_scale) || request.guidance_scale < 0 || request.guidance_scale > 100) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'guidance_scale': {}, expected 0 to 100",
         request.guidance_scale);
  }
  if (!std::isfinite(request.shift) || request.shift <= 0 || request.shift > 100) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'shift': {}, expected a number in (0, 100]", request.shift);
  }
}

std::vector<at::Tensor> WanPipeline::EncodeText(const TokenizedText& tokens) {
  torch::NoGradGuard no_grad;
  const auto hidden = t5_->forward(tokens.ids.to(options_.device), tokens.mask.to(options_.device));
  std::vector<at::Tensor> contexts;
  for (std::int64_t i = 0; i < hidden.size(0); ++i) {
    const auto length = tokens.mask[i].sum().item<std::int64_t>();
    contexts.push_back(hidden[i].slice(0, 0, length).to(torch::kFloat));
  }
  return contexts;
}

at::Tensor WanPipeline::Velocity(const at::Tensor& latents, double timestep, const at::Tensor& context,
                                 const at::Tensor& context_null, double guidance_scale, std::int64_t* model_calls) {
  const auto device = latents.device();
  WanDitInput input;
  input.seq_len = 0;
  // Guidance 1 is the conditional prediction alone: the unconditional pass would not change it.
  if (guidance_scale == 1.0) {
    input.x = {latents};
    input.context = {context};
    input.timesteps = torch::tensor({timestep}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    ++*model_calls;
    return dit_->forward(input)[0];
  }
  at::Tensor cond, uncond;
  if (options_.batch_cfg) {
    input.x = {latents, latents};
    input.context = {context, context_null};
    input.timesteps = torch::tensor({timestep, timestep}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    const auto out = dit_->forward(input);
    cond = out[0];
    uncond = out[1];
  } else {
    input.x = {latents};
    input.timesteps = torch::tensor({timestep}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    input.context = {context};
    cond = dit_->forward(input)[0];
    input.context = {context_null};
    uncond = dit_->forward(input)[0];
  }
  *model_calls += 2;
  return uncond + guidance_scale * (cond - uncond);
}

at::Tensor WanPipeline::Denoise(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& context_null,
                                const DenoiseOptions& options, const GenerationCallbacks& callbacks,
                                const StepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  auto latents = noise.to(options_.device, torch::kFloat);
  const auto start = Clock::now();
  GenerationStats local;
  GenerationStats& out = stats ? *stats : local;
  for (int step = 0; step < scheduler->steps(); ++step) {
    if (callbacks.cancelled && callbacks.cancelled()) {
      Fail(ErrorCode::kCancelled, "generation cancelled before step {} of {}", step + 1, scheduler->steps());
    }
    const auto velocity = Velocity(latents, scheduler->timesteps()[static_cast<std::size_t>(step)], context,
                                   context_null, options.guidance_scale, &out.model_calls);
    // The scheduler works on a batch of one, as the reference's.
    latents = scheduler->Step(velocity.unsqueeze(0), latents.unsqueeze(0))[0];
    ++out.full_steps;
    if (observer) observer(step, velocity, latents);
    if (callbacks.on_step) callbacks.on_step({step + 1, scheduler->steps(), SecondsSince(start)});
  }
  return latents;
}

at::Tensor WanPipeline::Decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  return vae_->Decode(latents.unsqueeze(0).to(options_.device, torch::kFloat))[0];
}

GenerationResult WanPipeline::Generate(const GenerationRequest& request, const GenerationCallbacks& callbacks) {
  Validate(request);
  GenerationResult result;
  auto& stats = result.stats;

  auto start = Clock::now();
  const auto negative = request.negative_prompt.empty() ? std::string(kDefaultNegativePrompt) : request.negative_prompt;
  const auto contexts = EncodeText(tokenizer_->Encode({request.prompt, negative}));
  stats.stage_seconds["encode_text"] = SecondsSince(start);

  const auto& config = dit_->config();
  const std::vector<std::int64_t> shape = {config.in_dim, (request.frames - 1) / kVaeStrideT + 1,
                                           request.height / kVaeStrideHW, request.width / kVaeStrideHW};
  // Seeded noise from a private generator of the device's kind, as the reference draws it.
  auto generator = at::globalContext().defaultGenerator(options_.device).clone();
  generator.set_current_seed(request.seed);
  const auto noise = torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat).device(options_.device));

  start = Clock::now();
  DenoiseOptions options;
  options.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true};
  options.guidance_scale = request.guidance_scale;
  const auto latents = Denoise(noise, contexts[0], contexts[1], options, callbacks, nullptr, &stats);
  stats.stage_seconds["denoise"] = SecondsSince(start);

  start = Clock::now();
  result.frames = ToVideoFrames(Decode(latents)).cpu();
  stats.stage_seconds["decode"] = SecondsSince(start);
  return result;
}

}  // namespace vidgen::wan
