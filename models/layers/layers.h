// Layers shared by the model families and their encoders: norms computed in fp32, dtype-aware projections.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace vidgen::layers {

// LayerNorm without affine parameters, computed in fp32 and returned in fp32.
at::Tensor LayerNormFp32(const at::Tensor& x, double eps);
// adaLN: LayerNormFp32(x)·(1 + scale) + shift in one pass after the norm, fp32, with the modulation [B, 1, D].
at::Tensor ModulatedLayerNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps);

// RMSNorm with a learned weight over the last dimension: x·rsqrt(mean(x²)+eps), computed in fp32 and cast back to
// x's dtype before the weight multiplies it (Wan's WanRMSNorm, HunyuanVideo's RMSNorm).
struct RmsNormImpl : torch::nn::Module {
  RmsNormImpl(std::int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

// LayerNorm with affine weight and bias, computed in fp32 (Wan's norm3, HunyuanVideo's affine norms).
struct AffineLayerNormImpl : torch::nn::Module {
  AffineLayerNormImpl(std::int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> fp32 [..., dim]
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(AffineLayerNorm);

// Applies a Linear whose weight may be stored in a narrower dtype than x: x is cast to the weight's dtype, so the
// product runs in the weight's precision (as under autocast), and the result stays in that dtype.
at::Tensor Project(const torch::nn::Linear& linear, const at::Tensor& x);

}  // namespace vidgen::layers
