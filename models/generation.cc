#include "models/generation.h"

#include <torch/torch.h>

namespace vidgen {

at::Tensor ToVideoFrames(const at::Tensor& video) {
  TORCH_CHECK(video.dim() == 4, "ToVideoFrames expects [C, F, H, W], got ", video.sizes());
  // As the reference's cache_video: map [-1, 1] to [0, 1], scale by 255 and truncate.
  const auto scaled = (video.to(torch::kFloat).clamp(-1, 1) + 1).div_(2).mul_(255);
  return scaled.permute({1, 2, 3, 0}).to(torch::kUInt8).contiguous();
}

}  // namespace vidgen
