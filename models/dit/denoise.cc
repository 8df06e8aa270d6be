#include "models/dit/denoise.h"

#include <array>
#include <chrono>
#include <optional>

#include <torch/torch.h>

#include "cache/guidance.h"
#include "common/error.h"
#include "parallel/world.h"

namespace vidgen::dit {
namespace {

using Clock = std::chrono::steady_clock;

struct Guidance {
  bool guided = false, cfg_parallel = false, batched = false;
  bool reuse_difference = false;  // cache::GuidanceCache::kReuseDifference with a cache
  bool two_passes() const { return guided && !batched && !cfg_parallel; }
  // As two passes with the difference reused, the prompt's pass is never forecast: it runs uncached, on full steps
  // only, and only the negative prompt's pass keeps a cache stream.
  bool prompt_cached() const { return !(two_passes() && reuse_difference); }
  int streams() const { return two_passes() && prompt_cached() ? 2 : 1; }
};

struct StepOutput {
  at::Tensor velocity;
  at::Tensor difference;  // cond − uncond of a guided step; undefined at guidance 1
};

// The guided velocity of one step: cache stream 0 for the prompt's pass (or the batch of both, or this CFG half's
// pass), stream 1 for the negative prompt's. With the guidance difference reused, a predicted step guides the
// forecast unconditional pass with the last full step's cond − uncond; as two passes, the prompt's is not run.
StepOutput Velocity(Denoiser& model, const at::Tensor& tokens, int step, double timestep, double scale,
                    const Guidance& guidance, parallel::World* world, cache::FeatureCache* cache,
                    cache::ReusedGuidance* reused, std::int64_t& model_calls) {
  auto pass = [&](int stream, std::span<const Condition> conditions) {
    ++model_calls;
    if (!cache || (stream == 0 && !guidance.prompt_cached())) {
      return model.Predict(tokens, timestep, conditions, nullptr);
    }
    auto forward = cache->Begin(step, stream);
    return model.Predict(tokens, timestep, conditions, &forward);
  };
  static constexpr std::array kPrompt = {Condition::kPrompt}, kNegative = {Condition::kNegative};
  static constexpr std::array kBoth = {Condition::kPrompt, Condition::kNegative};
  if (!guidance.guided) return {pass(0, kPrompt)[0], {}};
  const bool reuse = reused && !cache->IsFull(step);
  at::Tensor cond, uncond;
  if (guidance.cfg_parallel) {
    auto& group = world->cfg();
    const auto both = group.AllGather(pass(0, group.rank() == 0 ? kPrompt : kNegative)[0]);
    cond = both[0];
    uncond = both[1];
  } else if (guidance.batched) {
    const auto out = pass(0, kBoth);
    cond = out[0];
    uncond = out[1];
  } else {
    if (!reuse) cond = pass(0, kPrompt)[0];
    uncond = pass(1, kNegative)[0];
  }
  auto difference = reuse ? reused->At(step) : cond - uncond;
  if (reused && !reuse) reused->Remember(step, difference);
  return {uncond + scale * difference, difference};
}

}  // namespace

at::Tensor Denoise(Denoiser& model, const TokenSpace& space, const at::Tensor& noise, const SamplerOptions& options,
                   const GenerationCallbacks& callbacks, const StepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  GenerationStats local_stats;
  GenerationStats& out = stats ? *stats : local_stats;
  parallel::World* world = options.world;

  const auto grid = space.GridOf(noise);
  const auto all_tokens = space.Patchify(noise.to(model.device(), torch::kFloat));
  const auto shard = Shard::Of(all_tokens.size(0), world);
  auto tokens = shard.Take(all_tokens);
  auto to_latents = [&](const at::Tensor& chunk) { return space.Unpatchify(shard.Gather(chunk), grid); };
  model.Prepare(shard, grid);

  Guidance guidance;
  guidance.guided = options.guidance_scale != 1.0;
  guidance.cfg_parallel = guidance.guided && world && world->cfg().size() == 2;
  guidance.batched = guidance.guided && options.batch_cfg && !guidance.cfg_parallel;
  guidance.reuse_difference =
      guidance.guided && options.cache.enabled() && options.cache.guidance == cache::GuidanceCache::kReuseDifference;
  std::optional<cache::FeatureCache> feature_cache;
  if (options.cache.enabled()) {
    feature_cache.emplace(options.cache, model.Footprint(guidance.batched ? 2 : 1, guidance.streams()),
                          scheduler->steps(), scheduler->sigmas());
  }
  cache::FeatureCache* cache = feature_cache ? &*feature_cache : nullptr;
  std::optional<cache::ReusedGuidance> reused_guidance;
  if (guidance.reuse_difference) {
    if (options.cache.calibrated && !options.calibration) {
      Fail(ErrorCode::kFailedPrecondition,
           "the cache is calibrated but the model has no calibration: run `vidgen-bench calibrate --model-dir DIR` "
           "to write {} beside the checkpoint",
           cache::kCalibrationFile);
    }
    reused_guidance.emplace(scheduler->sigmas(), options.cache.calibrated ? options.calibration : nullptr);
  }
  cache::ReusedGuidance* reused = reused_guidance ? &*reused_guidance : nullptr;

  const auto start = Clock::now();
  for (int step = 0; step < scheduler->steps(); ++step) {
    if (callbacks.cancelled && callbacks.cancelled()) {
      Fail(ErrorCode::kCancelled, "generation cancelled before step {} of {}", step + 1, scheduler->steps());
    }
    const double timestep = scheduler->timesteps()[static_cast<std::size_t>(step)];
    const auto output = Velocity(model, tokens, step, timestep, options.guidance_scale, guidance, world, cache, reused,
                                 out.model_calls);
    tokens = scheduler->Step(output.velocity.unsqueeze(0), tokens.unsqueeze(0))[0];
    if (observer) {
      observer({step, to_latents(output.velocity), to_latents(tokens),
                output.difference.defined() ? to_latents(output.difference) : at::Tensor()});
    }
    if (callbacks.on_step) {
      callbacks.on_step({step + 1, scheduler->steps(), std::chrono::duration<double>(Clock::now() - start).count()});
    }
  }
  RecordSteps(cache, scheduler->steps(), out);
  return to_latents(tokens);
}

}  // namespace vidgen::dit
