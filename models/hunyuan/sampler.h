// HunyuanVideo's denoising loop (models.md E.4): flow-matching Euler with shift 7 over reversed sigmas, timesteps
// σ·1000 as floats, and the distilled guidance embedded in the model (no second pass). It runs in token space like
// Wan's: each rank of the sequence group keeps its chunk of image tokens from the first step to the last, the text
// is the same everywhere, and the latents are gathered once at the end. A TaylorSeer cache holds this rank's chunk.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

#include <memory>

#include "cache/config.h"
#include "models/dit/denoise.h"
#include "models/generation.h"
#include "models/hunyuan/dit.h"
#include "models/schedulers/flow_scheduler.h"

namespace vidgen::hunyuan {

// The prompt as the DiT takes it: LLM states [Lt, text_states_dim], their mask [Lt] (a prefix of ones) and the CLIP
// pooled vector [text_states_dim_2].
struct HunyuanText {
  at::Tensor states, mask, pooled;
};

struct HunyuanDenoiseOptions {
  schedulers::ScheduleOptions schedule{schedulers::Solver::kEuler, 50, 7.0, /*integer_timesteps=*/false};
  double embedded_guidance = 6.0;
  cache::CacheConfig cache;
  parallel::World* world = nullptr;
};

// Sees every step: its index, the velocity and the latents after the step (whole, on every rank).
using HunyuanStepObserver = std::function<void(int step, const at::Tensor& velocity, const at::Tensor& latents)>;

// The guidance value the model is given: embedded_guidance·1000 computed in `dtype`, as the reference does (in bf16
// 6.0·1000 rounds to 6016; in fp32 it stays 6000).
double EmbeddedGuidanceValue(double embedded_guidance, c10::ScalarType dtype);

// The transformer conditioned on a prompt's states, for the shared denoising loop: one pass a step.
std::unique_ptr<dit::Denoiser> MakeDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance);

// noise [C, T, H, W] -> latents [C, T, H, W] fp32.
at::Tensor Denoise(HunyuanDit& dit, const at::Tensor& noise, const HunyuanText& text,
                   const HunyuanDenoiseOptions& options, const GenerationCallbacks& callbacks = {},
                   const HunyuanStepObserver& observer = nullptr, GenerationStats* stats = nullptr);

}  // namespace vidgen::hunyuan
