// The umT5 text encoder (models.md C.1), as Wan2.1 uses it: relative position buckets per layer, gated-GELU FFN, no
// attention scaling. Names are the keys of Wan's models_t5_umt5-xxl-enc-bf16.pth.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "models/io/weight_store.h"

namespace vidgen::encoders {

struct UmT5Config {
  std::int64_t vocab = 256384;
  std::int64_t dim = 4096;
  std::int64_t dim_attn = 4096;
  std::int64_t dim_ffn = 10240;
  std::int64_t num_heads = 64;
  std::int64_t num_layers = 24;
  std::int64_t num_buckets = 32;
  std::int64_t max_distance = 128;
};

// The encoder's sizes, read off the shapes of its weights (the release ships no config). Throws Error naming the
// tensor that is missing or inconsistent.
UmT5Config InferUmT5Config(const io::WeightStore& weights);

// T5's RMS norm: no mean, no bias; computed in fp32, cast to a half weight's dtype before the multiply.
struct T5LayerNormImpl : torch::nn::Module {
  explicit T5LayerNormImpl(std::int64_t dim);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
};
TORCH_MODULE(T5LayerNorm);

struct T5AttentionImpl : torch::nn::Module {
  explicit T5AttentionImpl(const UmT5Config& config);
  // x: [B, L, dim], bias: [1 or B, heads, L, L] additive (positions and padding) -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  std::int64_t num_heads;
};
TORCH_MODULE(T5Attention);

struct T5FeedForwardImpl : torch::nn::Module {
  explicit T5FeedForwardImpl(const UmT5Config& config);
  at::Tensor forward(const at::Tensor& x);  // fc2(fc1(x) ⊙ gelu_tanh(gate(x)))
  torch::nn::Sequential gate{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(T5FeedForward);

// Bidirectional relative position buckets -> a bias per head.
struct T5RelativeEmbeddingImpl : torch::nn::Module {
  explicit T5RelativeEmbeddingImpl(const UmT5Config& config);
  at::Tensor forward(std::int64_t length);  // -> [1, heads, L, L]
  torch::nn::Embedding embedding{nullptr};
  std::int64_t num_buckets, max_distance;
};
TORCH_MODULE(T5RelativeEmbedding);

struct T5BlockImpl : torch::nn::Module {
  explicit T5BlockImpl(const UmT5Config& config);
  // x: [B, L, dim], padded_keys: [B, 1, 1, L] bool -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& padded_keys);
  T5LayerNorm norm1{nullptr}, norm2{nullptr};
  T5Attention attn{nullptr};
  T5FeedForward ffn{nullptr};
  T5RelativeEmbedding pos_embedding{nullptr};
};
TORCH_MODULE(T5Block);

struct UmT5EncoderImpl : torch::nn::Module {
  explicit UmT5EncoderImpl(const UmT5Config& config);
  // ids, mask: [B, L] integers -> hidden states [B, L, dim] in the weights' dtype (padded positions included).
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask);
  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  T5LayerNorm norm{nullptr};
};
TORCH_MODULE(UmT5Encoder);

// transformers' UMT5EncoderModel names (diffusers' text_encoder/) -> the release's (models.md C.1).
const io::KeyMap& TransformersUmT5KeyMap();

// The encoder from its weights in either naming, in `dtype` on `device`, in eval mode. Throws Error listing what
// does not fit.
UmT5Encoder LoadUmT5Encoder(io::WeightStore& weights, c10::ScalarType dtype, c10::Device device);

}  // namespace vidgen::encoders
