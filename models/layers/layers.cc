#include "models/layers/layers.h"

#include <torch/torch.h>

#include "models/layers/deferred.h"

namespace vidgen::layers {

at::Tensor LayerNormFp32(const at::Tensor& x, double eps) {
  return torch::layer_norm(x.to(torch::kFloat), {x.size(-1)}, {}, {}, eps);
}

at::Tensor ModulatedLayerNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  return torch::addcmul(shift, LayerNormFp32(x, eps), 1 + scale);
}

RmsNormImpl::RmsNormImpl(std::int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", layers::NewParameter({dim}, 1.0));
}

at::Tensor RmsNormImpl::forward(const at::Tensor& x) {
  const auto xf = x.to(torch::kFloat);
  const auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return normed.to(x.scalar_type()) * weight;
}

AffineLayerNormImpl::AffineLayerNormImpl(std::int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", layers::NewParameter({dim}, 1.0));
  bias = register_parameter("bias", layers::NewParameter({dim}, 0.0));
}

at::Tensor AffineLayerNormImpl::forward(const at::Tensor& x) {
  return torch::layer_norm(x.to(torch::kFloat), {x.size(-1)}, weight.to(torch::kFloat), bias.to(torch::kFloat), eps);
}

at::Tensor Project(const torch::nn::Linear& linear, const at::Tensor& x) {
  return torch::linear(x.to(linear->weight.scalar_type()), linear->weight, linear->bias);
}

}  // namespace vidgen::layers
