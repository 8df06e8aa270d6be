#include "models/hunyuan/text_encoders.h"

#include <filesystem>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/io/weight_store.h"

namespace vidgen::hunyuan {
namespace {

namespace fs = std::filesystem;

// A module that only names children.
std::shared_ptr<torch::nn::Module> Holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

// Additive mask [B, 1, L, L]: causal, and keys past each row's mask length hidden.
at::Tensor CausalMask(const at::Tensor& mask, std::int64_t length, const torch::Device& device) {
  const auto positions = torch::arange(length, torch::TensorOptions().device(device));
  const auto future = positions.view({1, -1}) > positions.view({-1, 1});               // [L, L]
  const auto padded = mask.to(device).eq(0).view({mask.size(0), 1, 1, length});         // [B, 1, 1, L]
  const auto blocked = future.view({1, 1, length, length}) | padded;
  return torch::zeros(blocked.sizes(), torch::TensorOptions().dtype(torch::kFloat).device(device))
      .masked_fill(blocked, -std::numeric_limits<float>::infinity());
}

// softmax(q·kᵀ/√d + mask)·v in fp32 for short sequences; q [B, H, L, d], k and v [B, H, L, d]. Rows whose keys are
// all masked give 0.
at::Tensor DenseAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q.to(torch::kFloat), k.to(torch::kFloat).transpose(-1, -2)).mul_(scale).add_(mask);
  auto weights = torch::softmax(scores, -1).nan_to_num(0.0);
  return torch::matmul(weights, v.to(torch::kFloat)).to(q.scalar_type());
}

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
  const std::int64_t inner = config.num_attention_heads * config.head_dim;
  input_layernorm = register_module("input_layernorm", layers::RmsNorm(d, config.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", layers::RmsNorm(d, config.rms_norm_eps));
  auto attention = Holder(*this, "self_attn");
  q_proj = attention->register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(d, inner).bias(false)));
  k_proj = attention->register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(d, kv).bias(false)));
  v_proj = attention->register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(d, kv).bias(false)));
  o_proj = attention->register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(inner, d).bias(false)));
  auto mlp = Holder(*this, "mlp");
  const std::int64_t f = config.intermediate_size;
  gate_proj = mlp->register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(d, f).bias(false)));
  up_proj = mlp->register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(d, f).bias(false)));
  down_proj = mlp->register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(f, d).bias(false)));
}

at::Tensor LlamaLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const at::Tensor& mask) {
  const std::int64_t batch = x.size(0), length = x.size(1), hd = config.head_dim;
  const std::int64_t heads = config.num_attention_heads, kv_heads = config.num_key_value_heads;
  const auto h = input_layernorm(x);
  auto heads_first = [&](const at::Tensor& t, std::int64_t n) { return t.view({batch, length, n, hd}).transpose(1, 2); };
  auto q = heads_first(layers::Project(q_proj, h), heads);
  auto k = heads_first(layers::Project(k_proj, h), kv_heads);
  const auto v = heads_first(layers::Project(v_proj, h), kv_heads).repeat_interleave(heads / kv_heads, 1);
  auto rope = [&](const at::Tensor& t) {
    const auto tf = t.to(torch::kFloat);
    return (tf * cos + RotateHalf(tf) * sin).to(t.scalar_type());
  };
  q = rope(q);
  k = rope(k).repeat_interleave(heads / kv_heads, 1);
  const auto attended = DenseAttention(q, k, v, mask).transpose(1, 2).reshape({batch, length, -1});
  const auto after_attention = x + layers::Project(o_proj, attended);
  const auto g = post_attention_layernorm(after_attention);
  return after_attention +
         layers::Project(down_proj, torch::silu(layers::Project(gate_proj, g)) * layers::Project(up_proj, g));
}

LlamaEncoderImpl::LlamaEncoderImpl(const LlamaConfig& config) : config_(config) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.hidden_size));
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
  // RoPE over the halves of each head (Hugging Face's rotate_half), positions 0..L−1, in fp32.
  const auto inv_freq = torch::pow(config_.rope_theta, -torch::arange(0, hd, 2, torch::TensorOptions().dtype(torch::kFloat)
                                                                                      .device(device)) / double(hd));
  const auto angles = torch::outer(torch::arange(length, inv_freq.options()), inv_freq);
  const auto full = torch::cat({angles, angles}, -1);
  const auto cos = full.cos(), sin = full.sin();
  const auto attention_mask = CausalMask(mask, length, device);
  auto h = embed_tokens(ids.to(device));
  for (std::int64_t i = 0; i < config_.num_hidden_layers - skip; ++i) {
    h = layers[i]->as<LlamaLayer>()->forward(h, cos, sin, attention_mask);
  }
  return h;
}

ClipTextConfig ReadClipTextConfig(const std::string& path) {
  io::JsonConfig file(path, "text encoder config");
  file.Descend("text_config");
  ClipTextConfig config;
  file.Read("vocab_size", config.vocab_size);
  file.Read("hidden_size", config.hidden_size);
  file.Read("intermediate_size", config.intermediate_size);
  file.Read("num_hidden_layers", config.num_hidden_layers);
  file.Read("num_attention_heads", config.num_attention_heads);
  file.Read("max_position_embeddings", config.max_position_embeddings);
  file.Read("layer_norm_eps", config.layer_norm_eps);
  file.Read("eos_token_id", config.eos_token_id);
  std::string act = "quick_gelu";
  file.Read("hidden_act", act);
  if (act != "quick_gelu") Fail(ErrorCode::kUnimplemented, "text encoder config '{}': hidden_act '{}'", path, act);
  return config;
}

ClipTextEncoderImpl::ClipTextEncoderImpl(const ClipTextConfig& config) : config_(config) {
  const std::int64_t d = config.hidden_size;
  auto text_model = Holder(*this, "text_model");
  auto embeddings = Holder(*text_model, "embeddings");
  embeddings->register_module("token_embedding", torch::nn::Embedding(config.vocab_size, d));
  embeddings->register_module("position_embedding", torch::nn::Embedding(config.max_position_embeddings, d));
  auto encoder = Holder(*text_model, "encoder");
  auto layers = encoder->register_module("layers", torch::nn::ModuleList());
  auto norm = [&](std::int64_t dim) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(config.layer_norm_eps));
  };
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto layer = std::make_shared<torch::nn::Module>();
    auto attention = Holder(*layer, "self_attn");
    for (const char* name : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      attention->register_module(name, torch::nn::Linear(d, d));
    }
    layer->register_module("layer_norm1", norm(d));
    auto mlp = Holder(*layer, "mlp");
    mlp->register_module("fc1", torch::nn::Linear(d, config.intermediate_size));
    mlp->register_module("fc2", torch::nn::Linear(config.intermediate_size, d));
    layer->register_module("layer_norm2", norm(d));
    layers->push_back(layer);
  }
  text_model->register_module("final_layer_norm", norm(d));
}

ClipTextOutput ClipTextEncoderImpl::Forward(const at::Tensor& ids, const at::Tensor& mask) {
  torch::NoGradGuard no_grad;
  auto text_model = named_children()["text_model"];
  auto embeddings = text_model->named_children()["embeddings"];
  auto token = embeddings->named_children()["token_embedding"]->as<torch::nn::Embedding>();
  auto position = embeddings->named_children()["position_embedding"]->as<torch::nn::Embedding>();
  const auto device = token->weight.device();
  const std::int64_t batch = ids.size(0), length = ids.size(1), heads = config_.num_attention_heads;
  const auto positions = torch::arange(length, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto h = token->forward(ids.to(device)) + position->forward(positions).unsqueeze(0);
  const auto attention_mask = CausalMask(mask, length, device);
  for (const auto& layer : *text_model->named_children()["encoder"]->named_children()["layers"]->as<torch::nn::ModuleList>()) {
    auto children = layer->named_children();
    auto attention = children["self_attn"]->named_children();
    auto mlp = children["mlp"]->named_children();
    auto linear = [](const std::shared_ptr<torch::nn::Module>& m) { return torch::nn::Linear(std::dynamic_pointer_cast<torch::nn::LinearImpl>(m)); };
    auto split = [&](const at::Tensor& t) { return t.view({batch, length, heads, -1}).transpose(1, 2); };
    const auto n1 = children["layer_norm1"]->as<torch::nn::LayerNorm>()->forward(h);
    const auto attended = DenseAttention(split(layers::Project(linear(attention["q_proj"]), n1)),
                                         split(layers::Project(linear(attention["k_proj"]), n1)),
                                         split(layers::Project(linear(attention["v_proj"]), n1)), attention_mask);
    h = h + layers::Project(linear(attention["out_proj"]), attended.transpose(1, 2).reshape({batch, length, -1}));
    const auto n2 = children["layer_norm2"]->as<torch::nn::LayerNorm>()->forward(h);
    const auto f = layers::Project(linear(mlp["fc1"]), n2);
    h = h + layers::Project(linear(mlp["fc2"]), f * torch::sigmoid(1.702 * f));  // quick_gelu
  }
  h = text_model->named_children()["final_layer_norm"]->as<torch::nn::LayerNorm>()->forward(h);
  // transformers' pooling rule (argmax takes the first of equal maxima).
  const auto row_ids = ids.to(device).to(torch::kInt);
  const auto at = config_.eos_token_id == 2 ? row_ids.argmax(1) : row_ids.eq(config_.eos_token_id).to(torch::kInt).argmax(1);
  return {h, h.index({torch::arange(batch, at.options()), at})};
}

LlamaEncoder LoadLlamaEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  LlamaEncoder encoder(ReadLlamaConfig((fs::path(dir) / "config.json").string()));
  io::WeightStore store;
  store.AddSafetensors(dir, "model");
  for (const char* prefix : {"language_model.model.", "model."}) {
    if (store.Contains(std::string(prefix) + "embed_tokens.weight")) {
      store.SelectPrefix(prefix);
      break;
    }
  }
  store.Erase("lm_head.weight");
  store.LoadInto(*encoder);
  encoder->to(device, dtype);
  spdlog::info("loaded the LLaMA text encoder from '{}' ({} layers, width {})", dir,
               encoder->config().num_hidden_layers, encoder->config().hidden_size);
  return encoder;
}

ClipTextEncoder LoadClipTextEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  ClipTextEncoder encoder(ReadClipTextConfig((fs::path(dir) / "config.json").string()));
  io::WeightStore store;
  store.AddSafetensors(dir, "model");
  // A whole CLIP model's file: keep its text tower.
  if (store.Contains("vision_model.embeddings.patch_embedding.weight") || store.Contains("logit_scale")) {
    store.SelectPrefix("text_model.");
    store.Rename([](const std::string& name) { return "text_model." + name; });
  }
  store.Erase("text_model.embeddings.position_ids");
  store.LoadInto(*encoder);
  encoder->to(device, dtype);
  spdlog::info("loaded the CLIP text encoder from '{}' ({} layers, width {})", dir, encoder->config().num_hidden_layers,
               encoder->config().hidden_size);
  return encoder;
}

}  // namespace vidgen::hunyuan
