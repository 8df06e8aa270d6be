#include "models/dit/layers.h"

#include <cmath>

#include <torch/torch.h>

#include "models/layers/layers.h"
#include "models/layers/deferred.h"

namespace vidgen::dit {

at::Tensor Activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::kSilu: return torch::silu(x);
    case Activation::kGelu: return torch::gelu(x);
    case Activation::kGeluTanh: return torch::gelu(x, "tanh");
    case Activation::kQuickGelu: return x * torch::sigmoid(1.702 * x);
  }
  return x;
}

MlpImpl::MlpImpl(const MlpOptions& options) : activation(options.activation) {
  first = register_module(options.first, layers::Linear(options.in, options.hidden));
  second = register_module(options.second, layers::Linear(options.hidden, options.out));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return layers::Project(second, Activate(activation, layers::Project(first, x)));
}

SiluLinearImpl::SiluLinearImpl(std::int64_t in, std::int64_t out, const std::string& name) {
  linear = register_module(name, layers::Linear(in, out));
}

at::Tensor SiluLinearImpl::forward(const at::Tensor& x) {
  return layers::Project(linear, torch::silu(x.to(linear->weight.scalar_type())));
}

at::Tensor TimestepSinusoid(const at::Tensor& timesteps, std::int64_t dim, c10::ScalarType dtype) {
  TORCH_CHECK(dim % 2 == 0, "TimestepSinusoid needs an even dim, got ", dim);
  const std::int64_t half = dim / 2;
  const auto position = timesteps.to(dtype).flatten();
  const auto frequencies = torch::exp(-std::log(10000.0) * torch::arange(half, position.options()) / double(half));
  const auto angles = torch::outer(position, frequencies);
  return torch::cat({torch::cos(angles), torch::sin(angles)}, 1);
}

at::Tensor EmbedPatches(const torch::nn::Conv3d& patch_embedding, const at::Tensor& tokens) {
  const auto& weight = patch_embedding->weight;
  return torch::linear(tokens.to(weight.scalar_type()), weight.flatten(1), patch_embedding->bias);
}

at::Tensor CachedStack(cache::FeatureCache::Forward* cache,
                       const std::function<at::Tensor(cache::FeatureCache::Forward*)>& stack) {
  if (cache && cache->lite()) return cache->Branch(cache::FeatureCache::kOutputBranch, [&] { return stack(nullptr); });
  return stack(cache);
}

}  // namespace vidgen::dit
