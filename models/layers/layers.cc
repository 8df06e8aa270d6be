#include "models/layers/layers.h"

#include <torch/torch.h>

namespace vidgen::layers {

at::Tensor LayerNormFp32(const at::Tensor& x, double eps) {
  return torch::layer_norm(x.to(torch::kFloat), {x.size(-1)}, {}, {}, eps);
}

RmsNormImpl::RmsNormImpl(std::int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RmsNormImpl::forward(const at::Tensor& x) {
  const auto xf = x.to(torch::kFloat);
  const auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return normed.to(x.scalar_type()) * weight;
}

AffineLayerNormImpl::AffineLayerNormImpl(std::int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

at::Tensor AffineLayerNormImpl::forward(const at::Tensor& x) {
  return torch::layer_norm(x.to(torch::kFloat), {x.size(-1)}, weight.to(torch::kFloat), bias.to(torch::kFloat), eps);
}

at::Tensor Project(const torch::nn::Linear& linear, const at::Tensor& x) {
  return torch::linear(x.to(linear->weight.scalar_type()), linear->weight, linear->bias);
}

at::Tensor TimestepSinusoid(const at::Tensor& timesteps, std::int64_t dim) {
  TORCH_CHECK(dim % 2 == 0, "TimestepSinusoid needs an even dim, got ", dim);
  const std::int64_t half = dim / 2;
  const auto position = timesteps.to(torch::kFloat64).flatten();
  const auto frequencies = torch::pow(10000.0, -torch::arange(half, position.options()).div(half));
  const auto angles = torch::outer(position, frequencies);
  return torch::cat({torch::cos(angles), torch::sin(angles)}, 1);
}

at::Tensor GeluTanh(const at::Tensor& x) {
  return torch::gelu(x, "tanh");
}

}  // namespace vidgen::layers
