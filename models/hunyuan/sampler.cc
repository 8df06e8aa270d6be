#include "models/hunyuan/sampler.h"

#include <chrono>
#include <optional>

#include <torch/torch.h>

#include "cache/feature_cache.h"
#include "common/error.h"
#include "parallel/world.h"

namespace vidgen::hunyuan {

double EmbeddedGuidanceValue(double embedded_guidance, c10::ScalarType dtype) {
  return (torch::full({1}, embedded_guidance, torch::TensorOptions().dtype(dtype)) * 1000.0).item<double>();
}

at::Tensor Denoise(HunyuanDit& dit, const at::Tensor& noise, const HunyuanText& text,
                   const HunyuanDenoiseOptions& options, const GenerationCallbacks& callbacks,
                   const HunyuanStepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  using Clock = std::chrono::steady_clock;
  auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  GenerationStats local_stats;
  GenerationStats& out = stats ? *stats : local_stats;
  parallel::World* world = options.world;
  const auto device = dit->patch->weight.device();
  const auto dtype = dit->patch->weight.scalar_type();

  const auto grid = dit->TokenGrid(noise);
  auto all_tokens = dit->Patchify(noise.to(device, torch::kFloat));
  const std::int64_t length = all_tokens.size(0);
  const int parts = world ? world->sequence().size() : 1;
  const std::int64_t chunk = (length + parts - 1) / parts;
  all_tokens = torch::constant_pad_nd(all_tokens, {0, 0, 0, chunk * parts - length});
  HunyuanTokenInput input;
  input.grid = grid;
  input.offset = (world ? world->sequence().rank() : 0) * chunk;
  input.world = world;
  input.text_states = text.states.unsqueeze(0).to(device);
  input.text_mask = text.mask.unsqueeze(0).to(device);
  input.text_states_2 = text.pooled.unsqueeze(0).to(device);
  input.guidance = torch::full({1}, EmbeddedGuidanceValue(options.embedded_guidance, dtype),
                               torch::TensorOptions().dtype(torch::kFloat).device(device));
  auto tokens = all_tokens.slice(0, input.offset, input.offset + chunk).contiguous();
  auto to_latents = [&](const at::Tensor& chunk_tokens) {
    const auto whole = world ? world->sequence().AllGather(chunk_tokens).flatten(0, 1) : chunk_tokens;
    return dit->Unpatchify(whole, grid);
  };

  std::optional<cache::FeatureCache> feature_cache;
  if (options.cache.enabled()) {
    feature_cache.emplace(options.cache, dit->Footprint(1, chunk, text.states.size(0), 1), scheduler->steps(),
                          scheduler->sigmas());
  }

  const auto start = Clock::now();
  for (int step = 0; step < scheduler->steps(); ++step) {
    if (callbacks.cancelled && callbacks.cancelled()) {
      Fail(ErrorCode::kCancelled, "generation cancelled before step {} of {}", step + 1, scheduler->steps());
    }
    input.tokens = tokens.unsqueeze(0);
    input.timesteps = torch::full({1}, scheduler->timesteps()[static_cast<std::size_t>(step)],
                                  torch::TensorOptions().dtype(torch::kFloat).device(device));
    at::Tensor velocity;
    if (feature_cache) {
      auto forward = feature_cache->Begin(step, 0);
      velocity = dit->ForwardTokens(input, &forward)[0];
    } else {
      velocity = dit->ForwardTokens(input)[0];
    }
    ++out.model_calls;
    tokens = scheduler->Step(velocity.unsqueeze(0), tokens.unsqueeze(0))[0];
    if (observer) observer(step, to_latents(velocity), to_latents(tokens));
    if (callbacks.on_step) {
      callbacks.on_step({step + 1, scheduler->steps(), std::chrono::duration<double>(Clock::now() - start).count()});
    }
  }
  RecordSteps(feature_cache ? &*feature_cache : nullptr, scheduler->steps(), out);
  return to_latents(tokens);
}

}  // namespace vidgen::hunyuan
