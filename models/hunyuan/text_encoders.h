// HunyuanVideo's text encoders (models.md E.2, E.3): the LLaMA decoder of LLaVA-LLaMA-3-8B used as an encoder (the
// hidden state a few layers before the end, no final norm) and CLIP-L's text tower (the final-norm state at the
// end-of-text token). Parameter names are Hugging Face's (LlamaModel, CLIPTextModel), read from their config.json
// and safetensors.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "models/layers/layers.h"

namespace vidgen::hunyuan {

struct LlamaConfig {
  std::int64_t vocab_size = 128256;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 14336;
  std::int64_t num_hidden_layers = 32;
  std::int64_t num_attention_heads = 32;
  std::int64_t num_key_value_heads = 8;
  std::int64_t head_dim = 128;  // "head_dim", else hidden_size / num_attention_heads
  double rms_norm_eps = 1e-5;
  double rope_theta = 500000.0;
};
// Reads config.json; a rope_scaling other than none is UNIMPLEMENTED (LLaVA-LLaMA-3-8B has none).
LlamaConfig ReadLlamaConfig(const std::string& path);

struct LlamaLayerImpl : torch::nn::Module {
  explicit LlamaLayerImpl(const LlamaConfig& config);
  // x [B, L, D]; cos/sin [L, head_dim]; mask [B, 1, L, L] additive.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask);
  layers::RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};        // "self_attn.*"
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};                // "mlp.*"
  LlamaConfig config;
};
TORCH_MODULE(LlamaLayer);

class LlamaEncoderImpl : public torch::nn::Module {
 public:
  explicit LlamaEncoderImpl(const LlamaConfig& config);
  // hidden_states[−(skip + 1)] of Hugging Face's output: the state after num_hidden_layers − skip layers, without
  // the final norm (skip ≥ 1). ids and mask [B, L] (mask a prefix of ones: keys past it are not attended to).
  at::Tensor HiddenState(const at::Tensor& ids, const at::Tensor& mask, std::int64_t skip = 2);
  const LlamaConfig& config() const { return config_; }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  layers::RmsNorm norm{nullptr};  // loaded with the checkpoint, not applied (apply_final_norm is off)

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaEncoder);

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

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextEncoder);

// Loaders of Hugging Face folders (config.json and *.safetensors or an index, "model." or "text_model." prefixes as
// saved by different versions). Throw Error naming the folder or the tensors that do not fit.
LlamaEncoder LoadLlamaEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device);
ClipTextEncoder LoadClipTextEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device);

}  // namespace vidgen::hunyuan
