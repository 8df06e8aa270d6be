#include "models/encoders/llama.h"

#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/json.h"
#include "models/io/json_config.h"
#include "models/io/weight_store.h"
#include "models/layers/attention.h"
#include "models/layers/deferred.h"

namespace vidgen::encoders {
namespace {

// A module that only names children ("self_attn", "mlp").
std::shared_ptr<torch::nn::Module> Holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

// Hugging Face's rotate_half: the halves of each head, (a, b) -> (−b, a).
at::Tensor RotateHalf(const at::Tensor& x) {
  const auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

}  // namespace

LlamaConfig ReadLlamaConfig(const std::string& path) {
  const io::JsonConfig file(path, "text encoder config");
  const auto& json = file.json();
  LlamaConfig config;
  file.Read("vocab_size", config.vocab_size);
  file.Read("hidden_size", config.hidden_size);
  file.Read("intermediate_size", config.intermediate_size);
  file.Read("num_hidden_layers", config.num_hidden_layers);
  file.Read("num_attention_heads", config.num_attention_heads);
  config.num_key_value_heads = config.num_attention_heads;
  file.Read("num_key_value_heads", config.num_key_value_heads);
  file.Read("rms_norm_eps", config.rms_norm_eps);
  file.Read("rope_theta", config.rope_theta);
  if (config.num_attention_heads < 1 || config.num_key_value_heads < 1 ||
      config.num_attention_heads % config.num_key_value_heads) {
    Fail(ErrorCode::kInvalidArgument, "text encoder config '{}': {} heads do not group into {} key/value heads", path,
         config.num_attention_heads, config.num_key_value_heads);
  }
  config.head_dim = config.hidden_size / config.num_attention_heads;
  file.Read("head_dim", config.head_dim);
  if (json.contains("rope_scaling") && !json.at("rope_scaling").is_null()) {
    Fail(ErrorCode::kUnimplemented, "text encoder config '{}': rope_scaling {} is not supported", path,
         JsonExcerpt(json.at("rope_scaling")));
  }
  if (config.head_dim < 2 || config.head_dim % 2) {
    Fail(ErrorCode::kInvalidArgument, "text encoder config '{}': head_dim {} is not a positive even number", path,
         config.head_dim);
  }
  return config;
}

LlamaLayerImpl::LlamaLayerImpl(const LlamaConfig& config) : config(config) {
  const std::int64_t d = config.hidden_size, kv = config.num_key_value_heads * config.head_dim;
  const std::int64_t inner = config.num_attention_heads * config.head_dim, f = config.intermediate_size;
  auto linear = [](std::int64_t in, std::int64_t out) {
    return layers::Linear(in, out, false);
  };
  input_layernorm = register_module("input_layernorm", layers::RmsNorm(d, config.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", layers::RmsNorm(d, config.rms_norm_eps));
  auto attention = Holder(*this, "self_attn");
  q_proj = attention->register_module("q_proj", linear(d, inner));
  k_proj = attention->register_module("k_proj", linear(d, kv));
  v_proj = attention->register_module("v_proj", linear(d, kv));
  o_proj = attention->register_module("o_proj", linear(inner, d));
  auto mlp = Holder(*this, "mlp");
  gate_proj = mlp->register_module("gate_proj", linear(d, f));
  up_proj = mlp->register_module("up_proj", linear(d, f));
  down_proj = mlp->register_module("down_proj", linear(f, d));
}

at::Tensor LlamaLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const std::vector<std::int64_t>& key_lengths) {
  const std::int64_t groups = config.num_attention_heads / config.num_key_value_heads;
  const auto h = input_layernorm(x);
  auto heads = [&](const torch::nn::Linear& projection) { return layers::Project(projection, h).unflatten(-1, {-1, config.head_dim}); };
  // RoPE over the halves of each head in fp32; cos/sin [L, d] broadcast over the heads.
  auto rope = [&](const at::Tensor& t) {
    const auto tf = t.to(torch::kFloat);
    const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
    return (tf * c + RotateHalf(tf) * s).to(t.scalar_type());
  };
  const auto q = rope(heads(q_proj));
  const auto k = rope(heads(k_proj)).repeat_interleave(groups, 2);
  const auto v = heads(v_proj).repeat_interleave(groups, 2);
  layers::AttentionOptions options;
  options.key_lengths = key_lengths;
  options.causal = true;
  const auto after_attention = x + layers::Project(o_proj, layers::Attention(q, k, v, options).flatten(2));
  const auto g = post_attention_layernorm(after_attention);
  return after_attention +
         layers::Project(down_proj, torch::silu(layers::Project(gate_proj, g)) * layers::Project(up_proj, g));
}

LlamaEncoderImpl::LlamaEncoderImpl(const LlamaConfig& config) : config_(config) {
  embed_tokens = register_module("embed_tokens", layers::Embedding(config.vocab_size, config.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) layers->push_back(LlamaLayer(config));
  norm = register_module("norm", layers::RmsNorm(config.hidden_size, config.rms_norm_eps));
}

at::Tensor LlamaEncoderImpl::HiddenState(const at::Tensor& ids, const at::Tensor& mask, std::int64_t skip) {
  torch::NoGradGuard no_grad;
  if (skip < 1 || skip >= config_.num_hidden_layers) {
    Fail(ErrorCode::kInvalidArgument, "cannot skip {} of {} LLaMA layers", skip, config_.num_hidden_layers);
  }
  const auto device = embed_tokens->weight.device();
  const std::int64_t length = ids.size(1), hd = config_.head_dim;
  // Positions 0..L−1, frequencies theta^(−2i/d), in fp32.
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const auto inv_freq = torch::pow(config_.rope_theta, -torch::arange(0, hd, 2, f32) / double(hd));
  const auto angles = torch::outer(torch::arange(length, f32), inv_freq);
  const auto full = torch::cat({angles, angles}, -1);
  const auto cos = full.cos(), sin = full.sin();
  const auto key_lengths = layers::PrefixLengths(mask);
  auto h = embed_tokens(ids.to(device));
  for (std::int64_t i = 0; i < config_.num_hidden_layers - skip; ++i) {
    h = layers[i]->as<LlamaLayer>()->forward(h, cos, sin, key_lengths);
  }
  return h;
}

LlamaEncoder LoadLlamaEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  const auto config = ReadLlamaConfig((std::filesystem::path(dir) / "config.json").string());
  LlamaEncoder encoder(nullptr);
  {
    layers::DeferredInit deferred;
    encoder = LlamaEncoder(config);
  }
  layers::CastParameters(*encoder, dtype);
  io::WeightStore store;
  store.AddSafetensors(dir, "model");
  for (const char* prefix : {"language_model.model.", "model."}) {
    if (store.Contains(std::string(prefix) + "embed_tokens.weight")) {
      store.SelectPrefix(prefix);
      break;
    }
  }
  store.Erase("lm_head.weight");
  store.LoadInto(*encoder, {.allow_unexpected = false, .what = "the LLaMA text encoder", .device = device});
  encoder->eval();
  spdlog::info("loaded the LLaMA text encoder from '{}' ({} layers, width {})", dir,
               encoder->config().num_hidden_layers, encoder->config().hidden_size);
  return encoder;
}

}  // namespace vidgen::encoders
