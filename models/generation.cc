#include "models/generation.h"

#include <cmath>
#include <tuple>

#include <torch/torch.h>

#include "cache/feature_cache.h"
#include "common/error.h"

namespace vidgen {

at::Tensor ToVideoFrames(const at::Tensor& video) {
  TORCH_CHECK(video.dim() == 4, "ToVideoFrames expects [C, F, H, W], got ", video.sizes());
  // As the reference's cache_video: map [-1, 1] to [0, 1], scale by 255 and truncate.
  const auto scaled = (video.to(torch::kFloat).clamp(-1, 1) + 1).div_(2).mul_(255);
  return scaled.permute({1, 2, 3, 0}).to(torch::kUInt8).contiguous();
}

void ValidateRequest(const GenerationRequest& request, std::int64_t side_multiple, double min_guidance, int images) {
  for (const auto& [field, image, wanted] :
       {std::tuple{"image", &request.image, images >= 1}, {"last_image", &request.last_image, images >= 2}}) {
    if (image->defined() && !wanted) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': this model takes {}", field,
           images == 0 ? "no image (it is text-to-video)" : "one image (the first frame)");
    }
    if (!image->defined() && wanted) {
      Fail(ErrorCode::kInvalidArgument, "'{}' is required: this model makes a video from {}", field,
           images == 1 ? "an image" : "a first and a last frame");
    }
    if (image->defined() && (image->dim() != 3 || image->size(0) < 1 || image->size(1) < 1 || image->size(2) != 3 ||
                             image->scalar_type() != c10::ScalarType::Byte)) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': expected [H, W, 3] uint8 RGB", field);
    }
  }
  if (request.prompt.empty()) Fail(ErrorCode::kInvalidArgument, "invalid value for 'prompt': it is empty");
  if (request.frames < 1 || (request.frames - 1) % 4 != 0) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'frames': {}, expected 4k+1 (1, 5, 9, ...)", request.frames);
  }
  for (const auto& [field, value] : {std::pair{"width", request.width}, {"height", request.height}}) {
    // An image-to-video request's width × height is an area its image's aspect ratio shapes.
    if (images > 0 && (value < 1 || value > 4096)) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': {}, expected 1 to 4096", field, value);
    }
    if (images == 0 && (value < side_multiple || value % side_multiple != 0 || value > 4096)) {
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': {}, expected a multiple of {} from {} to 4096", field,
           value, side_multiple, side_multiple);
    }
  }
  if (request.steps < 1 || request.steps > 1000) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'steps': {}, expected 1 to 1000", request.steps);
  }
  if (!std::isfinite(request.guidance_scale) || request.guidance_scale < min_guidance || request.guidance_scale > 100) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'guidance_scale': {}, expected {} to 100",
         request.guidance_scale, min_guidance);
  }
  if (!std::isfinite(request.shift) || request.shift <= 0 || request.shift > 100) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'shift': {}, expected a number in (0, 100]", request.shift);
  }
}

at::Tensor SeededNoise(const GenerationRequest& request, std::int64_t channels, std::int64_t space_stride,
                       const c10::Device& device) {
  constexpr std::int64_t kStrideT = 4;  // both families' VAEs
  auto generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(request.seed);
  return torch::randn(
      {channels, (request.frames - 1) / kStrideT + 1, request.height / space_stride, request.width / space_stride},
      generator, torch::TensorOptions().dtype(torch::kFloat).device(device));
}

void RecordSteps(const cache::FeatureCache* cache, int steps, GenerationStats& stats) {
  if (!cache) {
    stats.full_steps += steps;
    return;
  }
  const auto& cache_stats = cache->stats();
  stats.full_steps += cache_stats.full_steps;
  stats.predicted_steps += cache_stats.predicted_steps;
  stats.cache_policy = cache_stats.policy;
  stats.cache_estimated_bytes = cache_stats.estimated_bytes;
  stats.cache_peak_bytes = cache_stats.peak_bytes;
  stats.forecast_seconds = cache_stats.forecast_seconds;
}

}  // namespace vidgen
