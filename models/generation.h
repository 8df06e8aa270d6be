// What every model family's pipeline takes and gives: a validated request in, frames and statistics out, with a
// progress callback and a cancel check once per denoising step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "cache/config.h"
#include "models/schedulers/flow_scheduler.h"
#include "spec/spec.h"

namespace vidgen {

namespace lora {
struct Adapter;
}

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;  // empty: the model family's default
  std::int64_t width = 832;
  std::int64_t height = 480;
  std::int64_t frames = 81;  // 4n + 1
  int steps = 50;
  double guidance_scale = 5.0;
  double shift = 5.0;
  std::uint64_t seed = 0;
  schedulers::Solver solver = schedulers::Solver::kUniPC;
  std::vector<double> timesteps;  // a given schedule (schedulers::ScheduleOptions::timesteps); empty: evenly spaced
  cache::CacheConfig cache;       // feature caching (TaylorSeer); none by default
  // Image-to-video models: the first frame, and a first-last-frame model's last one, [H, W, 3] uint8 RGB.
  at::Tensor image, last_image;
  // Adapters (read by the pipeline's ReadLora; not owned) and their scales, stacked in order on the transformer.
  std::vector<std::pair<const lora::Adapter*, double>> loras;
};

struct StepProgress {
  int step = 0;  // 1-based: steps done
  int total = 0;
  double seconds = 0;  // since denoising began
};

struct GenerationCallbacks {
  std::function<void(const StepProgress&)> on_step;
  // Checked before every step; returning true stops the run with Error(CANCELLED).
  std::function<bool()> cancelled;
};

struct GenerationStats {
  std::map<std::string, double> stage_seconds;  // "encode_text", "denoise", "decode"
  int full_steps = 0;
  int predicted_steps = 0;
  std::int64_t model_calls = 0;                       // DiT forward passes, each CFG pass counted
  cache::Policy cache_policy = cache::Policy::kNone;  // in effect, after any budget fallback
  std::int64_t cache_estimated_bytes = 0;
  std::int64_t cache_peak_bytes = 0;
  double forecast_seconds = 0;
};

struct GenerationResult {
  at::Tensor frames;  // [F, H, W, 3] uint8
  GenerationStats stats;
};

// Checks what every family's request shares (prompt, frames 4k+1, sides multiples of `side_multiple` up to 4096,
// steps 1..1000, guidance within [min_guidance, 100], shift in (0, 100]) and that it brings the images the model
// takes (0: none, 1: `image`, 2: `image` and `last_image`; with images, width × height is an area: sides 1..4096);
// throws Error(INVALID_ARGUMENT) naming the field.
void ValidateRequest(const GenerationRequest& request, std::int64_t side_multiple, double min_guidance, int images = 0);

// The initial latents of a request: [channels, 1+(F−1)/4, H/s, W/s] fp32 for a VAE that compresses space by
// `space_stride` (8 for both released families), from a private generator of the device's kind seeded with
// request.seed, as the references draw them.
at::Tensor SeededNoise(const GenerationRequest& request, std::int64_t channels, std::int64_t space_stride,
                       const c10::Device& device);

namespace cache {
class FeatureCache;
}
// Adds a finished run's step counts to `stats`: the cache's full and predicted steps and memory, or every step full
// when there was no cache.
void RecordSteps(const cache::FeatureCache* cache, int steps, GenerationStats& stats);

// What a worker runs: one model family's pipeline.
class VideoPipeline {
 public:
  virtual ~VideoPipeline() = default;
  // Validates the request (Error(INVALID_ARGUMENT) naming the field), then generates.
  virtual GenerationResult Generate(const GenerationRequest& request, const GenerationCallbacks& callbacks) = 0;
  // Width and height must be multiples of this: the VAE's spatial stride × the DiT's patch.
  virtual std::int64_t side_multiple() const = 0;
  // What the feature cache keeps for one video token of one stream (batch 1, no text): to estimate a job's bytes.
  virtual cache::CacheFootprint TokenFootprint() const = 0;
  // What the model makes videos from (which images a request must bring).
  virtual spec::Task task() const { return spec::Task::kTextToVideo; }
  // Reads a LoRA adapter for the model's transformer; throws Error naming every key that does not fit.
  virtual lora::Adapter ReadLora(const std::string& path) = 0;
  // How many LoRA sets besides the one in use keep their merged weights on the host for a job that names one again
  // (each costs the host memory of the weights it changes).
  virtual void KeepLoraSets(std::size_t sets) = 0;
  // Every parameter and buffer the pipeline holds (DiT, encoders, VAE), on whatever device each is.
  virtual std::vector<at::Tensor> weights() const = 0;
};

// [C, F, H, W] in [-1, 1] -> [F, H, W, C] uint8, as the reference's video writer converts.
at::Tensor ToVideoFrames(const at::Tensor& video);

}  // namespace vidgen
