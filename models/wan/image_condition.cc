#include "models/wan/image_condition.h"

#include <cmath>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/error.h"

namespace vidgen::wan {
namespace {

// Python's float `a // b` (float_floor_div): through fmod, so that it agrees with the reference where a / b rounds.
double PyFloorDiv(double a, double b) {
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double floor = std::floor(div);
  if (div - floor > 0.5) floor += 1.0;
  return floor;
}

// Python's round() of a float: half to even, which nearbyint does in the default rounding mode.
std::int64_t PyRound(double x) {
  return static_cast<std::int64_t>(std::nearbyint(x));
}

}  // namespace

at::Tensor ImageToModel(const at::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != torch::kUInt8) {
    Fail(ErrorCode::kInvalidArgument, "an image must be [H, W, 3] uint8 RGB, not [{}] {}", fmt::join(rgb.sizes(), ", "),
         c10::toString(rgb.scalar_type()));
  }
  return rgb.permute({2, 0, 1}).to(torch::kFloat).div(255).sub(0.5).div(0.5);
}

LatentSize ImageLatentSize(std::int64_t image_h, std::int64_t image_w, double max_area, std::int64_t stride,
                           std::int64_t patch) {
  const double aspect = static_cast<double>(image_h) / static_cast<double>(image_w);
  auto side = [&](double squared) {
    const double cells =
        PyFloorDiv(PyFloorDiv(std::sqrt(squared), static_cast<double>(stride)), static_cast<double>(patch));
    return PyRound(cells * static_cast<double>(patch));
  };
  const LatentSize size{side(max_area * aspect), side(max_area / aspect)};
  if (size.height < 1 || size.width < 1) {
    Fail(ErrorCode::kInvalidArgument,
         "invalid value for 'image': its aspect ratio {}×{} leaves no video within {} pixels (a side under {})",
         image_w, image_h, max_area, stride * patch);
  }
  return size;
}

at::Tensor ResizeBicubic(const at::Tensor& image, std::int64_t height, std::int64_t width) {
  namespace F = torch::nn::functional;
  return F::interpolate(image.unsqueeze(0), F::InterpolateFuncOptions()
                                                .size(std::vector<std::int64_t>{height, width})
                                                .mode(torch::kBicubic)
                                                .align_corners(false))[0];
}

at::Tensor FitLastImage(const at::Tensor& last, std::int64_t first_h, std::int64_t first_w) {
  const std::int64_t last_h = last.size(1), last_w = last.size(2);
  if (last_h == first_h && last_w == first_w) return last;
  const double ratio = std::max(static_cast<double>(first_w) / static_cast<double>(last_w),
                                static_cast<double>(first_h) / static_cast<double>(last_h));
  // The reference's box is (width, height) read as (height, width).
  const std::int64_t crop_h = PyRound(static_cast<double>(last_w) * ratio);
  const std::int64_t crop_w = PyRound(static_cast<double>(last_h) * ratio);
  auto image = last;
  if (crop_h > last_h || crop_w > last_w) {
    const std::int64_t pad_w = std::max<std::int64_t>(crop_w - last_w, 0),
                       pad_h = std::max<std::int64_t>(crop_h - last_h, 0);
    image = torch::constant_pad_nd(image, {pad_w / 2, (pad_w + 1) / 2, pad_h / 2, (pad_h + 1) / 2}, 0.0);
  }
  const std::int64_t top = PyRound(static_cast<double>(image.size(1) - crop_h) / 2.0);
  const std::int64_t left = PyRound(static_cast<double>(image.size(2) - crop_w) / 2.0);
  return image.slice(1, top, top + crop_h).slice(2, left, left + crop_w);
}

at::Tensor ConditioningVideo(const at::Tensor& first, const at::Tensor& last, std::int64_t frames) {
  const std::int64_t given = last.defined() ? 2 : 1;
  std::vector<at::Tensor> parts = {first.unsqueeze(1),
                                   torch::zeros({3, frames - given, first.size(1), first.size(2)}, first.options())};
  if (last.defined()) parts.push_back(last.unsqueeze(1));
  return torch::cat(parts, 1);
}

at::Tensor FrameMask(std::int64_t frames, const LatentSize& size, bool last_given) {
  auto given = torch::zeros({frames + 3}, torch::kFloat);  // frame 0 four times, then frames 1..F−1
  given.slice(0, 0, 4).fill_(1);
  if (last_given) given[frames + 2] = 1;
  return given.view({-1, 4}).t().reshape({4, -1, 1, 1}).expand({4, -1, size.height, size.width}).contiguous();
}

}  // namespace vidgen::wan
