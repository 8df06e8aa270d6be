#include "models/layers/deferred.h"

#include <torch/torch.h>

namespace vidgen::layers {
namespace {

thread_local bool deferred = false;

void Defer(at::Tensor& parameter, at::IntArrayRef sizes) {
  if (parameter.defined()) parameter.set_data(Placeholder(sizes, parameter.scalar_type()));
}

}  // namespace

DeferredInit::DeferredInit() : outer_(deferred) {
  deferred = true;
}

DeferredInit::~DeferredInit() {
  deferred = outer_;
}

bool DeferredInit::active() {
  return deferred;
}

at::Tensor Placeholder(at::IntArrayRef sizes, c10::ScalarType dtype) {
  return torch::zeros({1}, torch::TensorOptions().dtype(dtype)).expand(sizes);
}

bool IsPlaceholder(const at::Tensor& tensor) {
  if (!tensor.defined() || tensor.numel() <= 1) return false;
  const auto strides = tensor.strides();
  return std::all_of(strides.begin(), strides.end(), [](std::int64_t stride) { return stride == 0; });
}

at::Tensor NewParameter(at::IntArrayRef sizes, double value) {
  return deferred ? Placeholder(sizes, torch::kFloat) : torch::full(sizes, value);
}

// Under DeferredInit each module is built at its smallest size (nothing worth initialising), then given its real
// options and placeholders of its real shapes.
torch::nn::Linear Linear(std::int64_t in, std::int64_t out, bool bias) {
  if (!deferred) return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  torch::nn::Linear linear(torch::nn::LinearOptions(1, 1).bias(bias));
  linear->options.in_features(in).out_features(out);
  Defer(linear->weight, {out, in});
  Defer(linear->bias, {out});
  return linear;
}

template <std::size_t D, typename Module, typename Options>
Module Convolution(const Options& options) {
  if (!deferred) return Module(options);
  const std::int64_t groups = options.groups();
  Module conv(Options(options).in_channels(groups).out_channels(groups));
  conv->options.in_channels(options.in_channels()).out_channels(options.out_channels());
  std::vector<std::int64_t> sizes = {options.out_channels(), options.in_channels() / groups};
  for (std::size_t i = 0; i < D; ++i) sizes.push_back(options.kernel_size()->at(i));
  Defer(conv->weight, sizes);
  Defer(conv->bias, {options.out_channels()});
  return conv;
}

torch::nn::Conv2d Conv2d(const torch::nn::Conv2dOptions& options) {
  return Convolution<2, torch::nn::Conv2d>(options);
}

torch::nn::Conv3d Conv3d(const torch::nn::Conv3dOptions& options) {
  return Convolution<3, torch::nn::Conv3d>(options);
}

torch::nn::Embedding Embedding(std::int64_t count, std::int64_t dim) {
  if (!deferred) return torch::nn::Embedding(count, dim);
  torch::nn::Embedding embedding(1, dim);
  embedding->options.num_embeddings(count);
  Defer(embedding->weight, {count, dim});
  return embedding;
}

void CastParameters(torch::nn::Module& module, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  auto cast = [&](at::Tensor& tensor) {
    if (!tensor.defined() || !tensor.is_floating_point() || tensor.scalar_type() == dtype) return;
    tensor.set_data(IsPlaceholder(tensor) ? Placeholder(tensor.sizes(), dtype) : tensor.to(dtype));
  };
  for (auto& parameter : module.parameters()) cast(parameter);
  for (auto& buffer : module.buffers()) cast(buffer);
}

}  // namespace vidgen::layers
