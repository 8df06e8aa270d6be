#include "models/wan/pipeline.h"

#include <chrono>
#include <cmath>
#include <optional>

#include <torch/torch.h>

#include "common/error.h"

namespace vidgen::wan {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Spatial and temporal compression of the Wan-VAE.
constexpr std::int64_t kVaeStrideHW = 8;

}  // namespace

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

WanPipeline::WanPipeline(WanLoadOptions options, std::unique_ptr<WanTokenizer> tokenizer, UmT5Encoder t5, WanDit dit,
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

at::Tensor WanPipeline::Velocity(const at::Tensor& tokens, const WanTokenInput& where, int step, double timestep,
                                 const at::Tensor& text_cond, const at::Tensor& text_uncond, double guidance_scale,
                                 cache::FeatureCache* cache, std::int64_t* model_calls) {
  // The time embedding is the same for both passes of a step.
  const auto [time, time_projection] = dit_->EmbedTime(
      torch::full({1}, timestep, torch::TensorOptions().dtype(torch::kFloat64).device(tokens.device())));
  // One DiT pass of cache stream `stream` over `count` copies of the tokens.
  auto pass = [&](int stream, const at::Tensor& text_states, int count) {
    WanTokenInput input = where;
    input.tokens = tokens.unsqueeze(0).expand({count, -1, -1});
    input.grids.assign(static_cast<std::size_t>(count), where.grids.front());
    input.text_states = text_states;
    input.timesteps = torch::full({count}, timestep, torch::TensorOptions().dtype(torch::kFloat64));
    input.time = time.expand({count, -1});
    input.time_projection = time_projection.expand({count, -1, -1});
    ++*model_calls;
    if (!cache) return dit_->ForwardTokens(input);
    auto forward = cache->Begin(step, stream);
    return dit_->ForwardTokens(input, &forward);
  };
  // Guidance 1 is the conditional prediction alone: the unconditional pass would not change it.
  if (guidance_scale == 1.0) return pass(0, text_cond, 1)[0];
  at::Tensor cond, uncond;
  if (cfg_parallel()) {
    // Each CFG half computes one pass (its own cache stream); one exchange combines them.
    auto& group = options_.world->cfg();
    const auto both = group.AllGather(pass(0, group.rank() == 0 ? text_cond : text_uncond, 1)[0]);
    cond = both[0];
    uncond = both[1];
  } else if (options_.batch_cfg) {
    const auto out = pass(0, torch::cat({text_cond, text_uncond}), 2);
    cond = out[0];
    uncond = out[1];
  } else {
    cond = pass(0, text_cond, 1)[0];
    uncond = pass(1, text_uncond, 1)[0];
  }
  return uncond + guidance_scale * (cond - uncond);
}

at::Tensor WanPipeline::Denoise(const at::Tensor& noise, const at::Tensor& context, const at::Tensor& context_null,
                                const DenoiseOptions& options, const GenerationCallbacks& callbacks,
                                const StepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  GenerationStats local_stats;
  GenerationStats& out = stats ? *stats : local_stats;
  parallel::World* world = options_.world;

  // The sampler steps in token space: this process keeps its chunk of the (padded) token sequence from the first
  // step to the last and gathers the whole sequence once, at the end. Every update is element-wise per token.
  const auto grid = dit_->TokenGrid(noise);
  auto all_tokens = dit_->Patchify(noise.to(options_.device, torch::kFloat));
  const std::int64_t length = all_tokens.size(0);
  const int parts = world ? world->sequence().size() : 1;
  const std::int64_t chunk = (length + parts - 1) / parts;
  all_tokens = torch::constant_pad_nd(all_tokens, {0, 0, 0, chunk * parts - length});
  WanTokenInput where;
  where.grids = {grid};
  where.offset = (world ? world->sequence().rank() : 0) * chunk;
  where.world = world;
  auto tokens = all_tokens.slice(0, where.offset, where.offset + chunk).contiguous();
  auto to_latents = [&](const at::Tensor& chunk_tokens) {
    const auto whole = world ? world->sequence().AllGather(chunk_tokens).flatten(0, 1) : chunk_tokens;
    return dit_->Unpatchify(whole, grid);
  };

  // The text embedding is the same at every step: once per stream.
  const auto text_cond = dit_->EmbedText({context.to(options_.device)});
  const auto text_uncond = dit_->EmbedText({context_null.to(options_.device)});

  std::optional<cache::FeatureCache> feature_cache;
  if (options.cache.enabled()) {
    const bool guided = options.guidance_scale != 1.0;
    const bool batched = guided && options_.batch_cfg && !cfg_parallel();
    const int streams = guided && !batched && !cfg_parallel() ? 2 : 1;
    feature_cache.emplace(options.cache, dit_->Footprint(batched ? 2 : 1, chunk, streams), scheduler->steps(),
                          scheduler->sigmas());
  }
  cache::FeatureCache* cache = feature_cache ? &*feature_cache : nullptr;

  const auto start = Clock::now();
  for (int step = 0; step < scheduler->steps(); ++step) {
    if (callbacks.cancelled && callbacks.cancelled()) {
      Fail(ErrorCode::kCancelled, "generation cancelled before step {} of {}", step + 1, scheduler->steps());
    }
    const auto velocity = Velocity(tokens, where, step, scheduler->timesteps()[static_cast<std::size_t>(step)],
                                   text_cond, text_uncond, options.guidance_scale, cache, &out.model_calls);
    tokens = scheduler->Step(velocity.unsqueeze(0), tokens.unsqueeze(0))[0];
    if (observer) observer(step, to_latents(velocity), to_latents(tokens));
    if (callbacks.on_step) callbacks.on_step({step + 1, scheduler->steps(), SecondsSince(start)});
  }
  RecordSteps(cache, scheduler->steps(), out);
  return to_latents(tokens);
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

  const auto noise = SeededNoise(request, dit_->config().in_dim, kVaeStrideHW, options_.device);

  start = Clock::now();
  DenoiseOptions options;
  options.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true};
  options.guidance_scale = request.guidance_scale;
  options.cache = request.cache;
  const auto latents = Denoise(noise, contexts[0], contexts[1], options, callbacks, nullptr, &stats);
  stats.stage_seconds["denoise"] = SecondsSince(start);

  start = Clock::now();
  result.frames = ToVideoFrames(Decode(latents)).cpu();
  stats.stage_seconds["decode"] = SecondsSince(start);
  return result;
}

}  // namespace vidgen::wan
