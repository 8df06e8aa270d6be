// Fidelity of decoded videos to a reference: PSNR and SSIM of uint8 frames [F, H, W, 3].
#pragma once

#include <ATen/core/Tensor.h>

namespace vidgen::tools {

// In dB over all pixels; infinity for identical videos.
double Psnr(const at::Tensor& a, const at::Tensor& b);
// Mean SSIM over frames of grey images, 8×8 windows at stride 4 (enough to rank caches against each other).
double Ssim(const at::Tensor& a, const at::Tensor& b);

}  // namespace vidgen::tools
