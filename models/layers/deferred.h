// Modules built while a DeferredInit lives get placeholder parameters: their shape and dtype, but one element of
// memory (broadcast), to be filled from a checkpoint by io::WeightStore::LoadInto. Loading a model then costs its
// final size once, not an initialised fp32 copy of it first (56 GB for Wan2.1-14B). Outside a DeferredInit the
// factories build ordinary, initialised modules (training, tests).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

namespace vidgen::layers {

class DeferredInit {
 public:
  DeferredInit();
  ~DeferredInit();
  DeferredInit(const DeferredInit&) = delete;
  DeferredInit& operator=(const DeferredInit&) = delete;
  static bool active();

 private:
  bool outer_;
};

// A tensor of `sizes` and `dtype` backed by one element: what a deferred parameter holds until it is loaded.
at::Tensor Placeholder(at::IntArrayRef sizes, c10::ScalarType dtype);
bool IsPlaceholder(const at::Tensor& tensor);

// A parameter's initial value: a placeholder under DeferredInit, else `value` filled in.
at::Tensor NewParameter(at::IntArrayRef sizes, double value);

// torch::nn modules whose parameters follow DeferredInit.
torch::nn::Linear Linear(std::int64_t in, std::int64_t out, bool bias = true);
torch::nn::Conv2d Conv2d(const torch::nn::Conv2dOptions& options);
torch::nn::Conv3d Conv3d(const torch::nn::Conv3dOptions& options);
torch::nn::Embedding Embedding(std::int64_t count, std::int64_t dim);

// Casts the floating-point parameters and buffers of `module` (and its children) to `dtype`; placeholders stay
// placeholders. Use it instead of Module::to(dtype), which would materialise them.
void CastParameters(torch::nn::Module& module, c10::ScalarType dtype);

}  // namespace vidgen::layers
