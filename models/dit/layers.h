// The layers both families' transformers are built from, with options where the families differ: the two-layer
// MLP (its children's names and activation), a projection behind SiLU (modulation), the timestep sinusoid in the
// precision each reference computes it, the patch embedding on tokens, and the block stack under a cache.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cache/feature_cache.h"

namespace vidgen::dit {

enum class Activation { kSilu, kGelu, kGeluTanh, kQuickGelu };
at::Tensor Activate(Activation activation, const at::Tensor& x);

struct MlpOptions {
  // `first`, `second`: the checkpoint's names of the two Linears ("0"/"2" as in an nn.Sequential, "fc1"/"fc2", ...).
  MlpOptions(std::int64_t in, std::int64_t hidden, std::int64_t out, Activation activation, std::string first = "0",
             std::string second = "2")
      : in(in), hidden(hidden), out(out), activation(activation), first(std::move(first)), second(std::move(second)) {}
  std::int64_t in, hidden, out;
  Activation activation;
  std::string first, second;
};

// second(activation(first(x))), each product in its weight's dtype.
struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const MlpOptions& options);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  torch::nn::Linear first{nullptr}, second{nullptr};
  Activation activation;
};
TORCH_MODULE(Mlp);

// linear(silu(x)), the Linear under `name` ("1" as in nn.Sequential(SiLU, Linear), or "linear"): the modulation
// and time projections.
struct SiluLinearImpl : torch::nn::Module {
  SiluLinearImpl(std::int64_t in, std::int64_t out, const std::string& name);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(SiluLinear);

// [cos(t·f_i), sin(t·f_i)] with f_i = 10000^(-i/half), i < half = dim/2, computed in `dtype` (Wan: float64,
// HunyuanVideo: fp32, as the references do) -> [N, dim].
at::Tensor TimestepSinusoid(const at::Tensor& timesteps, std::int64_t dim, c10::ScalarType dtype);

// A patch-embedding Conv3d (kernel = stride = the patch) as the product per token it is: tokens [B, L, C·Πpatch]
// in dit::TokenSpace's layout -> [B, L, out] in the weight's dtype.
at::Tensor EmbedPatches(const torch::nn::Conv3d& patch_embedding, const at::Tensor& tokens);

// The block stack and head, `stack(cache)`, under a cache: in lite mode as one branch (skipped whole on forecast
// steps), else with the cache routing each block's branches; without a cache, plainly.
at::Tensor CachedStack(cache::FeatureCache::Forward* cache,
                       const std::function<at::Tensor(cache::FeatureCache::Forward*)>& stack);

}  // namespace vidgen::dit
