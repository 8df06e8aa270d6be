#include "models/encoders/clip_text.h"

#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/io/weight_store.h"
#include "models/layers/attention.h"
#include "models/layers/layers.h"
#include "models/layers/deferred.h"

namespace vidgen::encoders {
namespace {

std::shared_ptr<torch::nn::Module> Holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::LayerNorm Norm(std::int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

}  // namespace

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
  if (config.num_attention_heads < 1 || config.hidden_size % config.num_attention_heads) {
    Fail(ErrorCode::kInvalidArgument, "text encoder config '{}': {} heads do not divide width {}", path,
         config.num_attention_heads, config.hidden_size);
  }
  return config;
}

ClipAttentionImpl::ClipAttentionImpl(std::int64_t dim, std::int64_t heads) : heads(heads) {
  q_proj = register_module("q_proj", layers::Linear(dim, dim));
  k_proj = register_module("k_proj", layers::Linear(dim, dim));
  v_proj = register_module("v_proj", layers::Linear(dim, dim));
  out_proj = register_module("out_proj", layers::Linear(dim, dim));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x, const std::vector<std::int64_t>& key_lengths) {
  auto split = [&](const torch::nn::Linear& projection) {
    return layers::Project(projection, x).unflatten(-1, {heads, -1});
  };
  layers::AttentionOptions options;
  options.key_lengths = key_lengths;
  options.causal = true;
  return layers::Project(out_proj, layers::Attention(split(q_proj), split(k_proj), split(v_proj), options).flatten(2));
}

ClipLayerImpl::ClipLayerImpl(const ClipTextConfig& config) {
  const std::int64_t d = config.hidden_size;
  self_attn = register_module("self_attn", ClipAttention(d, config.num_attention_heads));
  layer_norm1 = register_module("layer_norm1", Norm(d, config.layer_norm_eps));
  mlp = register_module(
      "mlp", dit::Mlp(dit::MlpOptions(d, config.intermediate_size, d, dit::Activation::kQuickGelu, "fc1", "fc2")));
  layer_norm2 = register_module("layer_norm2", Norm(d, config.layer_norm_eps));
}

at::Tensor ClipLayerImpl::forward(const at::Tensor& x, const std::vector<std::int64_t>& key_lengths) {
  const auto h = x + self_attn(layer_norm1(x), key_lengths);
  return h + mlp(layer_norm2(h));
}

ClipTextEncoderImpl::ClipTextEncoderImpl(const ClipTextConfig& config) : config_(config) {
  const std::int64_t d = config.hidden_size;
  auto text_model = Holder(*this, "text_model");
  auto embeddings = Holder(*text_model, "embeddings");
  token_embedding = embeddings->register_module("token_embedding", layers::Embedding(config.vocab_size, d));
  position_embedding =
      embeddings->register_module("position_embedding", layers::Embedding(config.max_position_embeddings, d));
  layers = Holder(*text_model, "encoder")->register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) layers->push_back(ClipLayer(config));
  final_layer_norm = text_model->register_module("final_layer_norm", Norm(d, config.layer_norm_eps));
}

ClipTextOutput ClipTextEncoderImpl::Forward(const at::Tensor& ids, const at::Tensor& mask) {
  torch::NoGradGuard no_grad;
  const auto device = token_embedding->weight.device();
  const std::int64_t batch = ids.size(0), length = ids.size(1);
  if (length > config_.max_position_embeddings) {
    Fail(ErrorCode::kInvalidArgument, "CLIP reads at most {} tokens, not {}", config_.max_position_embeddings, length);
  }
  const auto positions = torch::arange(length, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto h = token_embedding(ids.to(device)) + position_embedding(positions).unsqueeze(0);
  const auto key_lengths = layers::PrefixLengths(mask);
  for (const auto& layer : *layers) h = layer->as<ClipLayer>()->forward(h, key_lengths);
  h = final_layer_norm(h);
  // transformers' pooling rule (argmax takes the first of equal maxima).
  const auto row_ids = ids.to(device).to(torch::kInt);
  const auto at = config_.eos_token_id == 2 ? row_ids.argmax(1) : row_ids.eq(config_.eos_token_id).to(torch::kInt).argmax(1);
  return {h, h.index({torch::arange(batch, at.options()), at})};
}

ClipTextEncoder LoadClipTextEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  const auto config = ReadClipTextConfig((std::filesystem::path(dir) / "config.json").string());
  ClipTextEncoder encoder(nullptr);
  {
    layers::DeferredInit deferred;
    encoder = ClipTextEncoder(config);
  }
  layers::CastParameters(*encoder, dtype);
  io::WeightStore store;
  store.AddSafetensors(dir, "model");
  // A whole CLIP model's file: keep its text tower.
  if (store.Contains("vision_model.embeddings.patch_embedding.weight") || store.Contains("logit_scale")) {
    store.SelectPrefix("text_model.");
    store.Rename([](const std::string& name) { return "text_model." + name; });
  }
  store.Erase("text_model.embeddings.position_ids");
  store.LoadInto(*encoder, {.allow_unexpected = false, .what = "the CLIP text encoder", .device = device});
  encoder->eval();
  spdlog::info("loaded the CLIP text encoder from '{}' ({} layers, width {})", dir, encoder->config().num_hidden_layers,
               encoder->config().hidden_size);
  return encoder;
}

}  // namespace vidgen::encoders
