#include "models/encoders/clip_vision.h"

#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/io/weight_store.h"
#include "models/layers/attention.h"
#include "models/layers/deferred.h"

namespace vidgen::encoders {

ClipVisionAttentionImpl::ClipVisionAttentionImpl(std::int64_t dim, std::int64_t heads) : heads(heads) {
  to_qkv = register_module("to_qkv", layers::Linear(dim, 3 * dim));
  proj = register_module("proj", layers::Linear(dim, dim));
}

at::Tensor ClipVisionAttentionImpl::forward(const at::Tensor& x) {
  const auto qkv = layers::Project(to_qkv, x).unflatten(-1, {3, heads, -1}).unbind(2);
  return layers::Project(proj, layers::Attention(qkv[0], qkv[1], qkv[2], {}).flatten(2));
}

ClipVisionBlockImpl::ClipVisionBlockImpl(const ClipVisionConfig& config) {
  norm1 = register_module("norm1", layers::AffineLayerNorm(config.dim, config.eps));
  attn = register_module("attn", ClipVisionAttention(config.dim, config.heads));
  norm2 = register_module("norm2", layers::AffineLayerNorm(config.dim, config.eps));
  mlp =
      register_module("mlp", dit::Mlp(dit::MlpOptions(config.dim, config.mlp_dim, config.dim, dit::Activation::kGelu)));
}

at::Tensor ClipVisionBlockImpl::forward(const at::Tensor& x) {
  const auto h = x + attn(norm1(x).to(x.scalar_type()));
  return h + mlp(norm2(h).to(h.scalar_type()));
}

ClipVisionEncoderImpl::ClipVisionEncoderImpl(const ClipVisionConfig& config) : config_(config) {
  patch_embedding = register_module(
      "patch_embedding",
      layers::Conv2d(torch::nn::Conv2dOptions(3, config.dim, config.patch_size).stride(config.patch_size).bias(false)));
  cls_embedding = register_parameter("cls_embedding", layers::NewParameter({1, 1, config.dim}, 0.0));
  pos_embedding = register_parameter("pos_embedding", layers::NewParameter({1, config.tokens(), config.dim}, 0.0));
  pre_norm = register_module("pre_norm", layers::AffineLayerNorm(config.dim, config.eps));
  transformer = register_module("transformer", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.layers; ++i) transformer->push_back(ClipVisionBlock(config));
}

at::Tensor ClipVisionEncoderImpl::Preprocess(const at::Tensor& image) const {
  namespace F = torch::nn::functional;
  if (image.dim() != 3 || image.size(0) != 3) {
    Fail(ErrorCode::kInvalidArgument, "the CLIP image must be [3, H, W], not [{}]", fmt::join(image.sizes(), ", "));
  }
  const auto options = image.options().dtype(torch::kFloat);
  const auto mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}, options).view({3, 1, 1});
  const auto std = torch::tensor({0.26862954, 0.26130258, 0.27577711}, options).view({3, 1, 1});
  const auto resized = F::interpolate(image.to(torch::kFloat).unsqueeze(0),
                                      F::InterpolateFuncOptions()
                                          .size(std::vector<std::int64_t>{config_.image_size, config_.image_size})
                                          .mode(torch::kBicubic)
                                          .align_corners(false))[0];
  return (resized * 0.5 + 0.5 - mean) / std;
}

at::Tensor ClipVisionEncoderImpl::Forward(const at::Tensor& pixel_values) {
  torch::NoGradGuard no_grad;
  const auto& weight = patch_embedding->weight;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != 3 || pixel_values.size(2) != config_.image_size ||
      pixel_values.size(3) != config_.image_size) {
    Fail(ErrorCode::kInvalidArgument, "the CLIP vision tower takes [B, 3, {}, {}], not [{}]", config_.image_size,
         config_.image_size, fmt::join(pixel_values.sizes(), ", "));
  }
  auto patches = patch_embedding(pixel_values.to(weight.device(), weight.scalar_type())).flatten(2).transpose(1, 2);
  auto h = torch::cat({cls_embedding.expand({patches.size(0), -1, -1}), patches}, 1) + pos_embedding;
  h = pre_norm(h).to(weight.scalar_type());
  if (trace) trace("embed", h);
  for (std::size_t i = 0; i < transformer->size(); ++i) {
    h = transformer[i]->as<ClipVisionBlock>()->forward(h);
    if (trace) trace("block" + std::to_string(i), h);
  }
  return h.to(torch::kFloat);
}

namespace {

// Builds and fills the tower from weights in the released names (without "visual."), `source` naming them in
// errors; sizes from the shapes, `heads` and `eps` as given. The last block, `post_norm` and `head` are dropped.
ClipVisionEncoder LoadTower(io::WeightStore& weights, std::int64_t heads, double eps, const std::string& source,
                            c10::ScalarType dtype, c10::Device device) {
  std::int64_t blocks = 0;
  while (weights.Contains("transformer." + std::to_string(blocks) + ".norm1.weight")) ++blocks;
  if (blocks < 2)
    Fail(ErrorCode::kInvalidArgument, "CLIP '{}' has {} vision blocks, expected 2 or more", source, blocks);
  const std::string last = "transformer." + std::to_string(blocks - 1) + ".";
  for (const auto& name : weights.Names()) {
    if (name.starts_with(last) || name.starts_with("post_norm.") || name == "head") weights.Erase(name);
  }

  ClipVisionConfig config;
  const auto& patch = weights.Get("patch_embedding.weight");  // [dim, 3, p, p]
  const auto& positions = weights.Get("pos_embedding");       // [1, tokens, dim]
  const auto& mlp = weights.Get("transformer.0.mlp.0.weight");
  if (patch.dim() != 4 || patch.size(1) != 3 || patch.size(2) != patch.size(3) || positions.dim() != 3 ||
      mlp.dim() != 2) {
    Fail(ErrorCode::kInvalidArgument, "CLIP '{}': patch_embedding [{}] and pos_embedding [{}] are not a ViT's", source,
         fmt::join(patch.sizes(), ", "), fmt::join(positions.sizes(), ", "));
  }
  config.dim = patch.size(0);
  config.patch_size = patch.size(2);
  const auto grid = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(positions.size(1) - 1))));
  config.image_size = grid * config.patch_size;
  config.mlp_dim = mlp.size(0);
  config.layers = blocks - 1;
  config.heads = heads;
  config.eps = eps;
  if (config.tokens() != positions.size(1) || config.heads < 1 || config.dim % config.heads != 0) {
    Fail(ErrorCode::kInvalidArgument,
         "CLIP '{}': {} positions are no square grid plus a class token, or {} heads do not divide width {}", source,
         positions.size(1), config.heads, config.dim);
  }

  ClipVisionEncoder encoder(nullptr);
  {
    layers::DeferredInit deferred;
    encoder = ClipVisionEncoder(config);
  }
  layers::CastParameters(*encoder, dtype);
  weights.LoadInto(*encoder, {.allow_unexpected = false, .what = "the CLIP vision tower", .device = device});
  encoder->eval();
  return encoder;
}

}  // namespace

ClipVisionEncoder LoadClipVisionEncoder(const std::string& path, c10::ScalarType dtype, c10::Device device) {
  io::WeightStore weights;
  weights.AddFile(path);
  weights.SelectPrefix("visual.");
  std::int64_t heads = ClipVisionConfig{}.heads;
  const auto sizes = std::filesystem::path(path).parent_path() / "clip_config.json";
  if (std::filesystem::exists(sizes)) io::JsonConfig(sizes.string(), "CLIP config").Read("vision_heads", heads);
  return LoadTower(weights, heads, ClipVisionConfig{}.eps, path, dtype, device);
}

ClipVisionEncoder LoadDiffusersClipVisionEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  const auto config_path = (std::filesystem::path(dir) / "config.json").string();
  if (!std::filesystem::exists(config_path)) {
    Fail(ErrorCode::kNotFound, "CLIP image encoder config '{}' does not exist", config_path);
  }
  const io::JsonConfig config(config_path, "CLIP vision config");
  std::int64_t heads = 0;
  double eps = ClipVisionConfig{}.eps;
  std::string activation = "gelu";
  config.Read("num_attention_heads", heads);
  config.Read("layer_norm_eps", eps);
  config.Read("hidden_act", activation);
  if (activation != "gelu") {
    Fail(ErrorCode::kInvalidArgument, "CLIP config '{}': hidden_act '{}' is not supported (gelu)", config_path,
         activation);
  }

  io::WeightStore file;
  file.AddSafetensors(dir, "model");
  file.SelectPrefix("vision_model.");
  file.Erase("embeddings.position_ids");
  // transformers' names -> the released ones; q, k and v become one product.
  static const io::KeyMap names = io::KeyTable(R"(
      embeddings.patch_embedding   patch_embedding
      pre_layrnorm                 pre_norm
      post_layernorm               post_norm
      encoder.layers.              transformer.
      .layer_norm1                 .norm1
      .layer_norm2                 .norm2
      .self_attn.out_proj          .attn.proj
      .mlp.fc1                     .mlp.0
      .mlp.fc2                     .mlp.2
  )");
  io::WeightStore weights;
  for (const auto& name : file.Names()) {
    const auto& tensor = file.Get(name);
    if (name == "embeddings.class_embedding") {
      weights.Add("cls_embedding", tensor.reshape({1, 1, -1}), dir);
    } else if (name == "embeddings.position_embedding.weight") {
      weights.Add("pos_embedding", tensor.unsqueeze(0), dir);
    } else if (const auto at = name.find(".self_attn.q_proj."); at != std::string::npos) {
      const auto layer = name.substr(0, at), part = name.substr(at + std::string_view(".self_attn.q_proj.").size());
      auto projection = [&](const char* which) {
        return file.Get(fmt::format("{}.self_attn.{}.{}", layer, which, part));
      };
      weights.Add(io::ApplyKeyMap(names, layer) + ".attn.to_qkv." + part,
                  torch::cat({projection("q_proj"), projection("k_proj"), projection("v_proj")}), dir);
    } else if (name.find(".self_attn.k_proj.") == std::string::npos &&
               name.find(".self_attn.v_proj.") == std::string::npos) {
      weights.Add(io::ApplyKeyMap(names, name), tensor, dir);
    }
  }
  return LoadTower(weights, heads, eps, dir, dtype, device);
}

}  // namespace vidgen::encoders
