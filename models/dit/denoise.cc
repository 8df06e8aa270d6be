#include "models/dit/denoise.h"

#include <array>
#include <chrono>
#include <optional>

#include <torch/torch.h>

#include "common/error.h"
#include "parallel/world.h"

namespace vidgen::dit {
namespace {

using Clock = std::chrono::steady_clock;

struct Guidance {
  bool guided = false, cfg_parallel = false, batched = false;
  int streams() const { return guided && !batched && !cfg_parallel ? 2 : 1; }
};

// The guided velocity of one step: cache stream 0 for the prompt's pass (or the batch of both, or this CFG half's
// pass), stream 1 for the negative prompt's.
at::Tensor Velocity(Denoiser& model, const at::Tensor& tokens, int step, double timestep, double scale,
                    const Guidance& guidance, parallel::World* world, cache::FeatureCache* cache,
                    std::int64_t& model_calls) {
  auto pass = [&](int stream, std::span<const Condition> conditions) {
    ++model_calls;
    if (!cache) return model.Predict(tokens, timestep, conditions, nullptr);
    auto forward = cache->Begin(step, stream);
    return model.Predict(tokens, timestep, conditions, &forward);
  };
  static constexpr std::array kPrompt = {Condition::kPrompt}, kNegative = {Condition::kNegative};
  static constexpr std::array kBoth = {Condition::kPrompt, Condition::kNegative};
  if (!guidance.guided) return pass(0, kPrompt)[0];
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
    cond = pass(0, kPrompt)[0];
    uncond = pass(1, kNegative)[0];
  }
  return uncond + scale * (cond - uncond);
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
  std::optional<cache::FeatureCache> feature_cache;
  if (options.cache.enabled()) {
    feature_cache.emplace(options.cache, model.Footprint(guidance.batched ? 2 : 1, guidance.streams()),
                          scheduler->steps(), scheduler->sigmas());
  }
  cache::FeatureCache* cache = feature_cache ? &*feature_cache : nullptr;

  const auto start = Clock::now();
  for (int step = 0; step < scheduler->steps(); ++step) {
    if (callbacks.cancelled && callbacks.cancelled()) {
      Fail(ErrorCode::kCancelled, "generation cancelled before step {} of {}", step + 1, scheduler->steps());
    }
    const double timestep = scheduler->timesteps()[static_cast<std::size_t>(step)];
    const auto velocity = Velocity(model, tokens, step, timestep, options.guidance_scale, guidance, world, cache,
                                   out.model_calls);
    tokens = scheduler->Step(velocity.unsqueeze(0), tokens.unsqueeze(0))[0];
    if (observer) observer(step, to_latents(velocity), to_latents(tokens));
    if (callbacks.on_step) {
      callbacks.on_step({step + 1, scheduler->steps(), std::chrono::duration<double>(Clock::now() - start).count()});
    }
  }
  RecordSteps(cache, scheduler->steps(), out);
  return to_latents(tokens);
}

}  // namespace vidgen::dit
