// CLIP's text tower (models.md E.3: HunyuanVideo's CLIP-L): causal self-attention, quick-GELU MLPs, a final norm,
// and the pooled state at the end of text. Parameter names are Hugging Face's CLIPTextModel's, read from its
// config.json (a whole CLIPModel's "text_config" too) and safetensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "models/dit/layers.h"

namespace vidgen::encoders {

struct ClipTextConfig {
  std::int64_t vocab_size = 49408;
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 3072;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  // Where the pooled state is read: the first position holding this id, or, for the legacy value 2 that the
  // released CLIP-L config carries, the position of each row's highest id (transformers' rule: the first
  // <|endoftext|>, the largest id of CLIP's vocabulary).
  std::int64_t eos_token_id = 49407;
};
// Reads config.json (its "text_config" when it is a whole CLIP model's); activations other than quick_gelu are
// UNIMPLEMENTED.
ClipTextConfig ReadClipTextConfig(const std::string& path);

// "self_attn": q_proj, k_proj, v_proj, out_proj.
struct ClipAttentionImpl : torch::nn::Module {
  ClipAttentionImpl(std::int64_t dim, std::int64_t heads);
  at::Tensor forward(const at::Tensor& x, const std::vector<std::int64_t>& key_lengths);  // causal
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  std::int64_t heads;
};
TORCH_MODULE(ClipAttention);

struct ClipLayerImpl : torch::nn::Module {
  explicit ClipLayerImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x, const std::vector<std::int64_t>& key_lengths);
  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  dit::Mlp mlp{nullptr};
};
TORCH_MODULE(ClipLayer);

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, L, hidden], after the final norm
  at::Tensor pooled;             // [B, hidden], pooler_output
};

class ClipTextEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipTextEncoderImpl(const ClipTextConfig& config);
  // ids and mask [B, L] (mask a prefix of ones: causal attention that also skips padded keys, as
  // CLIPTextModel(input_ids, attention_mask)).
  ClipTextOutput Forward(const at::Tensor& ids, const at::Tensor& mask);
  const ClipTextConfig& config() const { return config_; }

  // "text_model." + embeddings.{token,position}_embedding, encoder.layers, final_layer_norm
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm final_layer_norm{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextEncoder);

// Loads a Hugging Face folder (config.json and *.safetensors; a whole CLIPModel's file keeps its text tower). Throws
// Error naming the folder or the tensors that do not fit.
ClipTextEncoder LoadClipTextEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device);

}  // namespace vidgen::encoders
