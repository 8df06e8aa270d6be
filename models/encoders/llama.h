// A LLaMA decoder used as a text encoder (models.md E.2: HunyuanVideo's LLaVA-LLaMA-3-8B): the hidden state a few
// layers before the end, without the final norm. Parameter names are Hugging Face's LlamaModel's, read from its
// config.json and safetensors (a LlamaForCausalLM save, with "model." prefixes and an lm_head, reads the same).
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

#include "models/layers/layers.h"

namespace vidgen::encoders {

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
  // x [B, L, D]; cos/sin [L, head_dim]; key_lengths: each row's real tokens (a prefix).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const std::vector<std::int64_t>& key_lengths);
  layers::RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};  // "self_attn.*"
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};          // "mlp.*"
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

// Loads a Hugging Face folder (config.json and *.safetensors or an index, "model." or "language_model.model."
// prefixes as saved by different versions). Throws Error naming the folder or the tensors that do not fit.
LlamaEncoder LoadLlamaEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device);

}  // namespace vidgen::encoders
