#include "tools/frame_metrics.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace vidgen::tools {

double Psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(torch::kFloat) - b.to(torch::kFloat)).pow(2).mean().item<double>();
  return mse == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(255.0 * 255.0 / mse);
}

double Ssim(const at::Tensor& a, const at::Tensor& b) {
  namespace F = torch::nn::functional;
  auto grey = [](const at::Tensor& v) { return v.to(torch::kFloat).mean(-1).unsqueeze(1); };  // [F, 1, H, W]
  const auto x = grey(a), y = grey(b);
  const auto pool = [](const at::Tensor& t) { return F::avg_pool2d(t, F::AvgPool2dFuncOptions(8).stride(4)); };
  const auto mx = pool(x), my = pool(y);
  const auto sx = pool(x * x) - mx * mx, sy = pool(y * y) - my * my, sxy = pool(x * y) - mx * my;
  constexpr double c1 = 6.5025, c2 = 58.5225;  // (0.01·255)², (0.03·255)²
  return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sx + sy + c2))).mean().item<double>();
}

}  // namespace vidgen::tools
