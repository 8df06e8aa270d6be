// What Wan2.1's image-to-video models (I2V, FLF2V) are conditioned on, as the reference's generate() prepares it
// (wan/image2video.py, wan/first_last_frame2video.py): the video size from the first image's aspect ratio within an
// area, the images resized to it, the frames the VAE encodes and the mask that marks the given ones.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace vidgen::wan {

struct LatentSize {
  std::int64_t height = 0, width = 0;
};

// An image as a user gives it, [H, W, 3] uint8 RGB -> [3, H, W] fp32 in [-1, 1] (to_tensor, then (x − 0.5)/0.5).
at::Tensor ImageToModel(const at::Tensor& rgb);

// The latent size of a video of about `max_area` pixels with the aspect ratio of an image of image_h × image_w:
// lat_h = round(sqrt(max_area·H/W) // stride // patch · patch), likewise lat_w, in float64 with Python's floor
// division. Throws Error(INVALID_ARGUMENT) naming "image" when a side comes out empty (an extreme aspect ratio).
LatentSize ImageLatentSize(std::int64_t image_h, std::int64_t image_w, double max_area, std::int64_t stride,
                           std::int64_t patch);

// image [3, H, W] -> [3, height, width]: bicubic, align_corners false, no antialias and no clamp (values overshoot
// ±1), as F.interpolate.
at::Tensor ResizeBicubic(const at::Tensor& image, std::int64_t height, std::int64_t width);

// FLF2V's last image when its size differs from the first's, by the reference's rule: scaled by
// r = max(Wf/Wl, Hf/Hl), the box (round(Wl·r), round(Hl·r)) is passed to center_crop as (height, width) (so W and
// H swap), zero-padded where the box is larger, offsets rounded half to even. Same sizes: `last` unchanged.
at::Tensor FitLastImage(const at::Tensor& last, std::int64_t first_h, std::int64_t first_w);

// The video the VAE encodes for the condition [3, frames, H, W]: the first image, then zeros; with `last`, that
// image as the final frame. Both images are already at the video's size.
at::Tensor ConditioningVideo(const at::Tensor& first, const at::Tensor& last, std::int64_t frames);

// Which latent frames are given [4, T, lat_h, lat_w]: mask[c, t] = m[4t + c] over the frames with the first one
// repeated 4 times (so all of latent frame 0), and with `last_given` also the final frame (channel 3 of the last
// latent frame).
at::Tensor FrameMask(std::int64_t frames, const LatentSize& size, bool last_given);

}  // namespace vidgen::wan
