// One denoising loop for every model family: flow-matching steps in token space over this process's shard of the
// sequence, classifier-free guidance as two passes, one batch of two, or one pass on each half of a CFG-parallel
// group, the feature cache per stream, cancel and progress once per step. A family gives the loop its transformer
// as a Denoiser.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "cache/calibration.h"
#include "cache/config.h"
#include "cache/feature_cache.h"
#include "models/dit/token_space.h"
#include "models/generation.h"
#include "models/schedulers/flow_scheduler.h"

namespace vidgen::dit {

// What a pass is conditioned on: the prompt, or the negative prompt (classifier-free guidance's other pass).
enum class Condition { kPrompt, kNegative };

// A transformer over one generation.
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  virtual c10::Device device() const = 0;
  // Once, before the first step: which tokens this process holds, so that what depends only on where tokens sit
  // (rotary tables, masks) is built once, not per step.
  virtual void Prepare(const Shard& shard, const Grid& grid) = 0;
  // What a cache holds per stream for `batch` rows of the shard.
  virtual cache::CacheFootprint Footprint(std::int64_t batch, int streams) const = 0;
  // The model's output for the shard's tokens [chunk, W] at `timestep`, one row per condition: [rows, chunk, W] fp32.
  virtual at::Tensor Predict(const at::Tensor& tokens, double timestep, std::span<const Condition> conditions,
                             cache::FeatureCache::Forward* cache) = 0;
};

struct SamplerOptions {
  schedulers::ScheduleOptions schedule;
  // uncond + s·(cond − uncond); 1: the prompt's pass alone (models with embedded guidance).
  double guidance_scale = 1.0;
  bool batch_cfg = false;  // the two guidance passes as one batch of two (faster on a GPU, twice the activations)
  cache::CacheConfig cache;
  // The model's calibration, for cache.calibrated (null: none); not owned.
  const cache::GuidanceCalibration* calibration = nullptr;
  // Splits the tokens over its sequence group; a CFG group of two takes one guidance pass on each half. Not owned.
  parallel::World* world = nullptr;
};

// One step as an observer sees it, whole on every rank.
struct ObservedStep {
  int step;
  at::Tensor velocity;             // the guided velocity
  at::Tensor latents;              // after the step
  at::Tensor guidance_difference;  // cond − uncond (reused on a predicted step); undefined at guidance 1
};
using StepObserver = std::function<void(const ObservedStep&)>;

// noise [C, T, H, W] -> denoised latents [C, T, H, W] fp32. Throws Error(CANCELLED) when callbacks.cancelled()
// says so before a step.
at::Tensor Denoise(Denoiser& model, const TokenSpace& space, const at::Tensor& noise, const SamplerOptions& options,
                   const GenerationCallbacks& callbacks = {}, const StepObserver& observer = nullptr,
                   GenerationStats* stats = nullptr);

}  // namespace vidgen::dit
